"""Engine inputs on the device: compact batches in, uint8 images out.

The device side of the engine contract (the host side is :mod:`sisgen.engines.inputs`).
:class:`DeviceFeeder` moves an :class:`~sisgen.engines.inputs.EngineBatch` to the engine's
device and :func:`widen` turns it into what the backends take: int64 labels, the float
instance-edge map computed there from the edge ids (:func:`instance_edges_torch`, exactly
:func:`sisgen.labelmap.instance_edges`), replicated noise repeated over ``H×W``
(:func:`sisgen.noise.expand_noise`), int64 instance ids, the photo in [-1, 1] and the
hole as float. :func:`to_uint8_nhwc` converts the images to bytes there, with the rounding
of :func:`sisgen.engines.images_to_uint8`, so only bytes come back.

On CUDA every host array is staged in a pinned buffer that is reused once the copy out of
it has finished (:class:`HostBufferPool`), and all work of a batch (copies in, widening,
the backend, the conversion, the copy out) is enqueued on one dedicated stream, not the
legacy default stream; :meth:`DeviceFeeder.fetch` returns a :class:`PendingImages` whose
:meth:`~PendingImages.result` waits for that batch alone, so a caller can enqueue the next
batch first. On the CPU the arrays are wrapped without copies and results are immediate.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from ..noise import expand_noise
from .inputs import EngineBatch, InputSpec

__all__ = ["DeviceFeeder", "HostBufferPool", "PendingImages", "instance_edges_torch",
           "to_uint8_nhwc", "widen"]


def instance_edges_torch(ids: torch.Tensor) -> torch.Tensor:
    """Instance edges of ``[B,H,W]`` id maps as float32 ``[B,1,H,W]``, where ``ids`` are.

    A pixel is an edge when any 4-neighbour has a different id: the same values as
    :func:`sisgen.labelmap.instance_edges`.
    """
    edge = torch.zeros(ids.shape, dtype=torch.bool, device=ids.device)
    dx = ids[..., :, 1:] != ids[..., :, :-1]
    dy = ids[..., 1:, :] != ids[..., :-1, :]
    edge[..., :, 1:] |= dx
    edge[..., :, :-1] |= dx
    edge[..., 1:, :] |= dy
    edge[..., :-1, :] |= dy
    return edge.to(torch.float32).unsqueeze(1)


def to_uint8_nhwc(images: torch.Tensor) -> torch.Tensor:
    """``[B,3,H,W]`` in [-1, 1] -> ``[B,H,W,3]`` uint8 where ``images`` are.

    ``rint((x + 1) * 127.5)`` clipped to 0..255, computed in the images' own float type:
    the bytes :func:`sisgen.engines.images_to_uint8` gives. uint8 images (engines exported
    with byte output, already NHWC) pass through.
    """
    if images.dtype == torch.uint8:
        return images
    if images.dtype not in (torch.float16, torch.float32, torch.float64):
        images = images.to(torch.float32)  # bfloat16 and friends: numpy has no such type
    x = ((images + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous()


def _photo(image: torch.Tensor, has_photo: torch.Tensor | None) -> torch.Tensor:
    """A batch photo as float32 ``[B,3,H,W]`` in [-1, 1] (rows without a photo: 0)."""
    if image.dtype != torch.uint8:
        return image
    out = (image.permute(0, 3, 1, 2).to(torch.float32) / 127.5 - 1.0).contiguous()
    if has_photo is not None:
        out[~has_photo] = 0.0
    return out


def widen(tensors: dict[str, torch.Tensor], spec: InputSpec) -> dict[str, torch.Tensor | None]:
    """The engine inputs of a batch's tensors, widened where they are.

    Args:
        tensors: The arrays of an :class:`~sisgen.engines.inputs.EngineBatch` as tensors
            (on the engine's device), by field name.
        spec: The spec the batch was built with.

    Returns:
        ``labels`` (int64 ``[B,H,W]``), ``edges`` (float32 ``[B,1,H,W]`` or ``None``),
        ``noise`` (full size, or ``None``), and those of ``instances`` (int64),
        ``features``, ``image`` (float32 ``[B,3,H,W]``) and ``mask`` (float32
        ``[B,1,H,W]``) the batch carries: the tensors ``Generator.prepare`` returns.
    """
    ids = tensors.get("edge_ids")
    out: dict[str, torch.Tensor | None] = {
        "labels": tensors["labels"].long(),
        "edges": None if ids is None else instance_edges_torch(ids),
        "noise": expand_noise(tensors.get("noise"), spec.noise_spec),
    }
    if tensors.get("instances") is not None:
        out["instances"] = tensors["instances"].long()
    if tensors.get("features") is not None:
        out["features"] = tensors["features"]
    if tensors.get("image") is not None:
        out["image"] = _photo(tensors["image"], tensors.get("has_photo"))
    if tensors.get("mask") is not None:
        out["mask"] = tensors["mask"].to(torch.float32).unsqueeze(1)
    return out


def _arrays(batch: EngineBatch) -> dict[str, np.ndarray]:
    """The arrays a batch sends to the device (the seeds stay on the host)."""
    return {k: np.ascontiguousarray(v) for k, v in batch._arrays().items() if k != "seeds"}


class HostBufferPool:
    """Host buffers reused across batches, each free again once its copy has finished.

    A buffer handed back with :meth:`give` carries the event recorded after the copy that
    reads (or writes) it; :meth:`take` returns a buffer of the shape and dtype whose event
    has completed, waits for the oldest when ``per_key`` are all still in flight, and
    allocates a new one otherwise. Runs have few distinct shapes (the batch, and the short
    last batch), so the pool stays small.

    Args:
        pin: Page-locked (pinned) memory, for asynchronous copies to and from CUDA.
        per_key: Most free buffers kept per shape and dtype.
    """

    def __init__(self, pin: bool = True, per_key: int = 4):
        self.pin, self.per_key = pin, per_key
        self._free: dict[tuple, list[tuple[torch.Tensor, Any]]] = {}
        self.allocated = 0

    def take(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """A free buffer of ``shape`` and ``dtype`` (contents undefined)."""
        entries = self._free.setdefault((tuple(shape), dtype), [])
        for i, (buf, event) in enumerate(entries):
            if event is None or event.query():
                del entries[i]
                return buf
        if len(entries) >= self.per_key:
            buf, event = entries.pop(0)
            event.synchronize()
            return buf
        self.allocated += 1
        return torch.empty(shape, dtype=dtype, pin_memory=self.pin)

    def give(self, buf: torch.Tensor, event: Any = None) -> None:
        """Hand ``buf`` back; it is reused once ``event`` (if any) has completed."""
        entries = self._free.setdefault((tuple(buf.shape), buf.dtype), [])
        if len(entries) < self.per_key:
            entries.append((buf, event))


class PendingImages:
    """The uint8 images of a batch, being copied back; :meth:`result` waits for them."""

    def __init__(self, images: np.ndarray | torch.Tensor, event: Any = None,
                 pool: HostBufferPool | None = None):
        self._images, self._event, self._pool = images, event, pool
        self._result: np.ndarray | None = None

    def done(self) -> bool:
        """Whether :meth:`result` would return without waiting."""
        return self._result is not None or self._event is None or self._event.query()

    def result(self) -> np.ndarray:
        """``[B,H,W,3]`` uint8 (an array of its own; the staging buffer is reused)."""
        if self._result is None:
            if self._event is None:
                images = self._images
                self._result = images.numpy() if isinstance(images, torch.Tensor) else images
            else:
                self._event.synchronize()
                self._result = self._images.numpy().copy()
                if self._pool is not None:
                    self._pool.give(self._images)
            self._images = None
        return self._result


class DeviceFeeder:
    """Moves engine batches to a device and images back (see the module docstring).

    Args:
        device: The engine's device.
        stream: The CUDA stream to enqueue on (default: a new one of its own; engines
            that must run on a stream of theirs, onnxruntime with ``share_stream``,
            give theirs).
    """

    def __init__(self, device: str | torch.device, stream: Any = None):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.stream = None
        self.pool: HostBufferPool | None = None
        if self.cuda:
            if not torch.cuda.is_available():
                raise RuntimeError(f"the engine runs on {self.device} but CUDA is not available")
            if self.device.index is None:
                self.device = torch.device("cuda", torch.cuda.current_device())
            self.stream = stream if stream is not None else torch.cuda.Stream(self.device)
            self.pool = HostBufferPool(pin=True)

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Make the feeder's device and stream current (nothing on the CPU)."""
        if not self.cuda:
            yield
            return
        with torch.cuda.device(self.device), torch.cuda.stream(self.stream):
            yield

    def upload(self, batch: EngineBatch) -> dict[str, torch.Tensor]:
        """The batch's arrays as tensors on the device (call inside :meth:`active`).

        On CUDA each array is copied into a pooled pinned buffer and from there to the
        device asynchronously on the feeder's stream.
        """
        arrays = _arrays(batch)
        if not self.cuda:
            return {k: torch.from_numpy(v) for k, v in arrays.items()}
        out, staged = {}, []
        for name, array in arrays.items():
            buf = self.pool.take(array.shape, torch.from_numpy(array[:0]).dtype)
            buf.numpy()[...] = array
            out[name] = buf.to(self.device, non_blocking=True)
            staged.append(buf)
        event = torch.cuda.Event()
        event.record(self.stream)
        for buf in staged:
            self.pool.give(buf, event)
        return out

    def fetch(self, images: torch.Tensor) -> PendingImages:
        """Start copying device ``images`` (uint8) back (call inside :meth:`active`)."""
        if not self.cuda or images.device.type != "cuda":
            return PendingImages(images.cpu().contiguous())
        host = self.pool.take(tuple(images.shape), images.dtype)
        host.copy_(images, non_blocking=True)
        event = torch.cuda.Event()
        event.record(self.stream)
        return PendingImages(host, event, self.pool)
