"""The editor's web app: thin FastAPI routes over an :class:`~sisgen.editor.session.EditorSession`.

One router per area (maps, edits, style, rendering, the instance bank, saving), pydantic
bodies (:mod:`sisgen.editor.schemas`), and the page itself (``static/``: plain HTML, CSS and
JavaScript shipped in the package; nothing is fetched from elsewhere). Endpoints::

    GET  /                      the page            GET  /static/{file}   its JS and CSS
    GET  /api/info              model, vocabulary, source, writers, limits
    GET  /api/state             the open scene (label map, steps, seed, undo/redo)
    GET  /api/maps              source map ids (offset, limit)
    POST /api/open              open a map {index} or {id}
    POST /api/blank             a blank canvas of the model's size {class}
    POST /api/edit              apply one edit step {op, ...}
    POST /api/undo, /api/redo   take back / re-apply a step
    POST /api/select            what is at {y, x} (class, instance, box)
    POST /api/seed              set the run seed {seed} (null: a new style)
    POST /api/restyle           new style for {instance} or {box} (resample_noise)
    GET  /api/image             the generated image (PNG) of the current scene
    GET  /api/bank              instance-bank items (offset, limit, class)
    POST /api/save              write the scene through the writers + manifest {name?}
    GET  /api/saved             the saved samples (manifest lines)
    POST /api/open_saved        reopen a saved scene {name}
    GET  /api/files/{path}      a file of the output folder (images of saved samples)

Safety: every file endpoint resolves its path inside the output folder (anything else is a
404, ``..`` included); request bodies are capped (:data:`MAX_BODY`, 413 beyond); with the
default loopback binding only loopback ``Host`` headers are served (no DNS rebinding from a
web page); bad input is a 4xx with a ``detail`` message (422 bad values, 404 unknown
instance / map / sample / file, 409 name taken) and the server keeps running.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware

from ..edits.paint import MAX_POINTS
from ..errors import SisgenInputError
from ..io import encode_image
from . import schemas
from .session import ConflictError, EditorSession, NotFoundError

#: Largest request body in bytes (a 10,000-point stroke is about 150 kB).
MAX_BODY = 1 << 20
#: ``Host`` headers served when the editor listens on the loopback interface.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
#: Files of the output folder the file endpoint serves, by suffix.
SERVED_SUFFIXES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                   ".json": "application/json", ".jsonl": "application/x-ndjson",
                   ".yaml": "text/yaml"}
STATIC = Path(__file__).parent / "static"


def get_session(request: Request) -> EditorSession:
    """The app's session (a FastAPI dependency)."""
    return request.app.state.session


Session = Annotated[EditorSession, Depends(get_session)]


def pack(array: np.ndarray) -> str:
    """An array's bytes (little-endian), zlib-compressed, base64: exact ids for the page."""
    return base64.b64encode(zlib.compress(np.ascontiguousarray(array).tobytes(), 1)).decode()


def state(session: EditorSession) -> dict[str, Any]:
    """The open scene as JSON: ids as packed arrays (uint8 classes, int32 instances)."""
    lm = session.current()
    mask = session.noise_mask()
    return {
        "revision": session.revision, "index": session.index, "id": session.base.id,
        "count": len(session.source), "shape": list(lm.shape),
        "semantic": pack(lm.semantic.astype(np.uint8)),
        "instance": None if lm.instance is None else pack(lm.instance.astype("<i4")),
        "restyled": None if mask is None else pack(mask.astype(np.uint8)),
        "steps": session.steps, "can_undo": session.can_undo, "can_redo": session.can_redo,
        "seed": session.seed, "variant": session.variant,
    }


# ============================================================================ routers
info = APIRouter(prefix="/api", tags=["info"])
maps = APIRouter(prefix="/api", tags=["maps"])
edits = APIRouter(prefix="/api", tags=["edits"])
style = APIRouter(prefix="/api", tags=["style"])
render = APIRouter(prefix="/api", tags=["render"])
bank = APIRouter(prefix="/api", tags=["bank"])
saving = APIRouter(prefix="/api", tags=["save"])


@info.get("/info")
def get_info(session: Session) -> dict[str, Any]:
    """What the page needs to know once: model, vocabulary, source, writers, limits."""
    gen, vocab = session.generator, session.vocab
    return {
        "model": {"name": gen.model_name, "backend": gen.backend, "hash": gen.model_hash,
                  "resolution": list(gen.resolution), "noise": gen.noise_spec,
                  "restyle": session.can_restyle, "photo_editing": session.photo_editing},
        "vocabulary": {"name": vocab.name, "ignore": vocab.ignore_id,
                       "classes": [{"id": c.id, "name": c.name, "color": list(c.color),
                                    "thing": c.is_thing} for c in vocab.classes]},
        "source": {"kind": session.source.kind, "count": len(session.source)},
        "writers": list(session.writers), "out_dir": str(session.out_dir),
        "limits": {"max_points": MAX_POINTS, "max_body": MAX_BODY},
    }


@info.get("/state")
def get_state(session: Session) -> dict[str, Any]:
    """The open scene."""
    return state(session)


@maps.get("/maps")
def list_maps(session: Session, offset: Annotated[int, Query(ge=0)] = 0,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    """A page of the source's map ids."""
    keys = session.keys()
    return {"count": len(keys), "offset": offset,
            "maps": [{"index": i, "id": keys[i]}
                     for i in range(offset, min(offset + limit, len(keys)))]}


@maps.post("/open")
def open_map(session: Session, body: schemas.OpenMap) -> dict[str, Any]:
    """Open a map of the source (its steps and undo history start empty)."""
    session.open(body.index if body.index is not None else session.find(body.id))
    return state(session)


@maps.post("/blank")
def blank(session: Session, body: schemas.Blank) -> dict[str, Any]:
    """Start over from a blank canvas of the model's size (a ``canvas`` step)."""
    session.blank(body.class_)
    return state(session)


@edits.post("/edit")
def edit(session: Session,
         step: Annotated[schemas.EditStep, Body()]) -> dict[str, Any]:
    """Apply one edit step; returns its record and the new scene."""
    if step.op in schemas.INSTANCE_OPS:
        session.require_instance(step.instance)
    record = session.apply(step.to_step())
    return {"record": record, "state": state(session)}


@edits.post("/undo")
def undo(session: Session) -> dict[str, Any]:
    """Take back the last step (``changed`` false when there was none)."""
    return {"changed": session.undo(), "state": state(session)}


@edits.post("/redo")
def redo(session: Session) -> dict[str, Any]:
    """Re-apply the last undone step (``changed`` false when there was none)."""
    return {"changed": session.redo(), "state": state(session)}


@edits.post("/select")
def select(session: Session, body: schemas.Select) -> dict[str, Any]:
    """The class and instance (``null`` for none) at a pixel, with the instance's box."""
    return session.instance_at(body.y, body.x)


@style.post("/seed")
def set_seed(session: Session, body: schemas.SetSeed) -> dict[str, Any]:
    """Set the run seed; ``null`` draws a new one ("new style")."""
    session.set_seed(body.seed)
    return state(session)


@style.post("/restyle")
def restyle(session: Session, body: schemas.Restyle) -> dict[str, Any]:
    """Give an instance or a box a new style (models with spatial noise or features)."""
    box = None if body.box is None else tuple(body.box)
    record = session.restyle(instance=body.instance, box=box)
    return {"record": record, "state": state(session)}


@render.get("/image")
def image(session: Session) -> Response:
    """The generated image of the current scene, as PNG (``X-Revision``: what it shows)."""
    try:
        rendered = session.render()
    except ValueError as e:  # the engine's own checks (e.g. a model without clusters)
        raise SisgenInputError(str(e)) from e
    headers = {"X-Revision": str(rendered.revision), "X-Seed": str(rendered.seed),
               "X-Edit-Ms": f"{rendered.edit_ms:.1f}", "X-Engine-Ms": f"{rendered.engine_ms:.1f}",
               "Cache-Control": "no-store"}
    return Response(encode_image(rendered.image, ".png"), media_type="image/png",
                    headers=headers)


@bank.get("/bank")
def bank_items(session: Session, offset: Annotated[int, Query(ge=0)] = 0,
               limit: Annotated[int, Query(ge=1, le=200)] = 48,
               class_: Annotated[str | None, Query(alias="class", max_length=64)] = None
               ) -> dict[str, Any]:
    """A page of the run's instance bank (built on first use), masks packed as uint8."""
    items = session.bank()
    wanted = None if class_ is None else session.vocab.resolve(class_)
    indices = items.indices(None if wanted is None else [wanted])
    page = indices[offset:offset + limit]
    return {"count": len(indices), "offset": offset, "items": [
        {"index": i, "class": items[i].class_id, "name": session.vocab[items[i].class_id].name,
         "size": list(items[i].size), "pixels": items[i].pixels, "source": items[i].source_id,
         "mask": pack(items[i].mask.astype(np.uint8))} for i in page]}


@saving.post("/save")
def save(session: Session, body: schemas.Save | None = None) -> dict[str, Any]:
    """Write the scene (writers, recipe file, manifest line); returns the manifest line."""
    return session.save(None if body is None else body.name)


@saving.get("/saved")
def saved(session: Session) -> dict[str, Any]:
    """The samples saved in the output folder, oldest first."""
    out = []
    for e in session.saved():
        images = [f"{kind}/{paths['image']}" for kind, paths in (e.get("outputs") or {}).items()
                  if isinstance(paths, dict) and "image" in paths]
        out.append({"name": e.get("sample"), "source_index": e.get("source_index"),
                    "source_id": e.get("source_id"), "seed": e.get("seed"),
                    "edits": len(e.get("recipe") or []), "image": images[0] if images else None,
                    "editor": e.get("editor")})
    return {"samples": out}


@saving.post("/open_saved")
def open_saved(session: Session, body: schemas.OpenSaved) -> dict[str, Any]:
    """Reopen a saved scene (map, steps, seed) to go on editing it."""
    session.open_saved(body.name)
    return state(session)


@saving.get("/files/{path:path}")
def files(session: Session, path: str) -> FileResponse:
    """A file of the output folder; anything outside it (``..``, links out) is a 404."""
    root = session.out_dir
    target = (root / path).resolve()
    suffix = target.suffix.lower()
    if not target.is_relative_to(root) or not target.is_file() or suffix not in SERVED_SUFFIXES:
        raise NotFoundError(f"no file {path!r} in the output folder")
    return FileResponse(target, media_type=SERVED_SUFFIXES[suffix],
                        headers={"Cache-Control": "no-store"})


# ============================================================================ the app
class BodyLimit:
    """ASGI middleware: answer 413 to a request body over ``max_bytes`` (declared or sent).

    A body sent without ``Content-Length`` is counted as it arrives; past the limit the
    client gets the 413, and the app sees a disconnect (its own answer is dropped).
    """

    def __init__(self, app: Any, max_bytes: int = MAX_BODY):
        self.app, self.max_bytes = app, int(max_bytes)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """Pass the request on, counting its body; 413 past the limit."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._reject(send)
            return
        received, started, rejected = 0, False, False

        async def limited_receive() -> dict:
            nonlocal received, rejected
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    if not started and not rejected:
                        await self._reject(send)
                    rejected = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict) -> None:
            nonlocal started
            if rejected:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not rejected:
                raise

    async def _reject(self, send: Any) -> None:
        response = JSONResponse({"detail": f"request body over {self.max_bytes} bytes"}, 413)
        await response({"type": "http"}, None, send)


def _error(status: int) -> Any:
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status)

    return handler


def create_app(session: EditorSession, *,
               allowed_hosts: Sequence[str] | None = LOOPBACK_HOSTS,
               max_body: int = MAX_BODY) -> FastAPI:
    """The editor app over ``session``.

    Args:
        session: The editing session.
        allowed_hosts: ``Host`` header values served (``None``: any, for ``--host 0.0.0.0``).
        max_body: Largest request body in bytes.

    """
    app = FastAPI(title="sisgen scene editor", docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.session = session
    for router in (info, maps, edits, style, render, bank, saving):
        app.include_router(router)
    app.add_exception_handler(NotFoundError, _error(404))
    app.add_exception_handler(ConflictError, _error(409))
    app.add_exception_handler(SisgenInputError, _error(422))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    app.add_middleware(BodyLimit, max_bytes=max_body)
    return app
