"""Image and file I/O shared by sources, writers and the CLI.

All readers raise :class:`~sisgen.errors.SisgenInputError` naming the file on failure; all
writers are atomic (write to a temporary file in the same folder, then ``os.replace``), so a
killed run never leaves a half-written file under its final name.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .errors import SisgenInputError

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def read_label_png(path: str | os.PathLike, *, allow_16bit: bool = False) -> np.ndarray:
    """Read a single-channel label PNG without any colour conversion.

    Args:
        path: The PNG file.
        allow_16bit: Accept 16-bit PNGs (Cityscapes ``instanceIds``); otherwise only 8-bit.

    Returns:
        An ``H×W`` integer array (uint8, or uint16 when ``allow_16bit``).

    Raises:
        SisgenInputError: The file is missing, not a PNG (a JPEG label map, say), corrupt,
            has colour channels (an RGB palette image) or an unexpected bit depth.
    """
    path = Path(path)
    if not path.is_file():
        raise SisgenInputError("file not found", path)
    with open(path, "rb") as f:
        head = f.read(8)
    if head != _PNG_MAGIC:
        raise SisgenInputError(
            "not a PNG file (label maps must be lossless single-channel PNGs; JPEG label "
            "maps corrupt class ids at every edge)",
            path,
        )
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise SisgenInputError("corrupt or truncated PNG (could not be decoded)", path)
    if arr.ndim == 3:
        if arr.shape[2] >= 3 and not (
            np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2])
        ):
            raise SisgenInputError(
                f"label map has {arr.shape[2]} colour channels with differing values; expected "
                "a single-channel map of class ids (convert colour palettes to ids first)",
                path,
            )
        arr = arr[..., 0]
    if arr.dtype == np.uint16 and not allow_16bit:
        raise SisgenInputError("16-bit PNG where an 8-bit label map was expected", path)
    if arr.dtype not in (np.uint8, np.uint16):
        raise SisgenInputError(f"unsupported PNG sample type {arr.dtype}", path)
    return arr


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read a photo as an ``H×W×3`` uint8 RGB array.

    Raises:
        SisgenInputError: The file is missing or cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise SisgenInputError("file not found", path)
    arr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if arr is None:
        raise SisgenInputError("corrupt or unsupported image (could not be decoded)", path)
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


_TEMP_NAMES = itertools.count()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temp file in the same folder, then a rename.

    A reader (or a run resumed after a crash) sees the old file or the whole new one,
    never a part; a killed writer can leave a hidden ``.<name>.<pid>.<n>.tmp`` file
    (:func:`remove_temp_files` clears them). The file is created with mode ``0o666`` less
    the process's umask, as ``open(path, "w")`` would make it (not ``mkstemp``'s private
    ``0o600``), so a dataset written for a team is readable by the team. Missing folders
    are created (only when the first attempt finds the folder missing: no ``mkdir`` per
    file).
    """
    folder, name = os.path.split(os.fspath(path))
    made = False
    while True:
        tmp = os.path.join(folder, f".{name}.{os.getpid()}.{next(_TEMP_NAMES)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:  # left by a killed process that had our pid
            continue
        except FileNotFoundError:
            if made or not folder:
                raise
            os.makedirs(folder, exist_ok=True)  # another thread may be making it too
            made = True
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def process_running(pid: int) -> bool:
    """Whether a process with this id runs on this machine (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except (OverflowError, ValueError):  # not a possible process id
        return False
    return True


def temp_owner(name: str) -> int | None:
    """The process id in a temp name sisgen makes, or ``None`` for any other name.

    Files of :func:`atomic_write_bytes` are ``.<name>.<pid>.<n>.tmp``; temp folders
    (e.g. the Hugging Face writer's) are ``.<kind>.tmp-<pid>-<random>``.
    """
    if not name.startswith("."):
        return None
    if name.endswith(".tmp"):
        parts = name.split(".")
        return int(parts[-3]) if len(parts) >= 5 and parts[-3].isdigit() else None
    head, sep, tail = name.partition(".tmp-")
    pid = tail.split("-", 1)[0]
    return int(pid) if sep and head and pid.isdigit() else None


def remove_temp_files(root: str | os.PathLike) -> int:
    """Delete the temp files and folders that killed sisgen processes left under ``root``.

    Only those whose process (the pid in the name, :func:`temp_owner`) no longer runs:
    the ranks of a ``torchrun`` job share one output folder, and a rank that resumes
    must not delete what another rank is writing.

    Returns:
        How many files and folders were removed.
    """
    removed = 0
    stack = [os.fspath(root)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except FileNotFoundError:
            continue
        for entry in entries:
            pid = temp_owner(entry.name)
            folder = entry.is_dir(follow_symlinks=False)
            if pid is not None and not process_running(pid):
                if folder:
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    Path(entry.path).unlink(missing_ok=True)
                removed += 1
            elif folder:
                stack.append(entry.path)
    return removed


def encode_image(image: np.ndarray, ext: str = ".png", *, jpeg_quality: int = 95) -> bytes:
    """Encode an ``H×W`` (gray/label) or ``H×W×3`` (RGB) array to PNG or JPEG bytes."""
    if image.ndim == 3:
        image = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if ext.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(image), params)
    if not ok:
        raise ValueError(f"could not encode image of shape {image.shape} as {ext}")
    return buf.tobytes()


def encode_palette_png(ids: np.ndarray, palette: np.ndarray) -> bytes:
    """An ``H×W`` uint8 id map drawn with a ``[256, 3]`` RGB palette, as RGB PNG bytes.

    The same bytes as :func:`encode_image` of ``palette[ids]``, made with one 3-channel
    ``cv2.LUT`` straight into OpenCV's BGR order (no RGB image, no channel swap).
    """
    lut = np.ascontiguousarray(np.asarray(palette, np.uint8)[:, ::-1]).reshape(1, 256, 3)
    ids = np.ascontiguousarray(ids)
    ok, buf = cv2.imencode(".png", cv2.LUT(cv2.merge([ids, ids, ids]), lut))
    if not ok:
        raise ValueError(f"could not encode a colour PNG of shape {ids.shape}")
    return buf.tobytes()


def write_image(path: str | os.PathLike, image: np.ndarray, *, jpeg_quality: int = 95) -> None:
    """Atomically write an image; the format follows the suffix (``.png``, ``.jpg``).

    ``H×W`` uint8/uint16 arrays are written as single-channel PNGs (label and instance
    maps), ``H×W×3`` uint8 arrays as RGB images.
    """
    path = Path(path)
    atomic_write_bytes(path, encode_image(image, path.suffix, jpeg_quality=jpeg_quality))


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = None) -> None:
    """Atomically write ``obj`` as JSON."""
    atomic_write_bytes(Path(path), json.dumps(obj, indent=indent).encode("utf-8"))


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write a text file."""
    atomic_write_bytes(Path(path), text.encode("utf-8"))


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file, raising :class:`SisgenInputError` naming the file on failure."""
    path = Path(path)
    if not path.is_file():
        raise SisgenInputError("file not found", path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SisgenInputError(f"malformed JSON ({e})", path) from e


_ARRAYS_MAGIC = b"SISGENA1"


def encode_arrays(arrays: dict[str, np.ndarray], header: dict[str, Any]) -> bytes:
    """Pack named arrays and a JSON header into one uncompressed blob (:func:`read_arrays`).

    The layout is ``magic``, the JSON length (8 bytes, little endian), the JSON (the
    header plus each array's dtype, shape and offset) and the raw C-order bytes of the
    arrays, so reading one back is one read and no decoding (no pickle, no zip).
    """
    table, offset, parts = {}, 0, []
    for name, a in arrays.items():
        a = np.ascontiguousarray(a)
        table[name] = {"dtype": a.dtype.str, "shape": list(a.shape), "offset": offset}
        parts.append(a.tobytes())
        offset += a.nbytes
    text = json.dumps({"header": header, "arrays": table}).encode("utf-8")
    return b"".join([_ARRAYS_MAGIC, len(text).to_bytes(8, "little"), text, *parts])


def read_arrays(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a blob written from :func:`encode_arrays`: ``(arrays, header)``.

    The arrays are writable views of one buffer read from the file.

    Raises:
        SisgenInputError: The file is missing, not such a blob, or truncated.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            buf = np.empty(os.fstat(f.fileno()).st_size, np.uint8)  # no zero fill
            n = f.readinto(memoryview(buf))
    except FileNotFoundError:
        raise SisgenInputError("file not found", path) from None
    if n != len(buf) or buf[:8].tobytes() != _ARRAYS_MAGIC:
        raise SisgenInputError("not an array blob (or truncated)", path)
    size = int.from_bytes(buf[8:16].tobytes(), "little")
    try:
        info = json.loads(buf[16:16 + size].tobytes())
        base = 16 + size
        arrays = {}
        for name, spec in info["arrays"].items():
            dtype = np.dtype(spec["dtype"])
            count = int(np.prod(spec["shape"], dtype=np.int64))
            start = base + int(spec["offset"])
            if start + count * dtype.itemsize > len(buf):
                raise ValueError("truncated")
            arrays[name] = np.frombuffer(buf, dtype, count, start).reshape(spec["shape"])
        return arrays, info["header"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise SisgenInputError(f"malformed array blob ({e})", path) from None
