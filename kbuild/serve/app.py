"""The ASGI app (starlette): TF Serving's REST routes over a Repository.

    GET  /healthz
    GET  /v1/models/NAME[/versions/N]             version status
    GET  /v1/models/NAME[/versions/N]/metadata    signatures (+ kbuild's metadata.json)
    POST /v1/models/NAME[/versions/N]:predict     {"instances": [...]} or {"inputs": ...}

Errors are `{"error": message}` with 400 (bad request), 404 (unknown model, version or
signature), 405, 413 (body over the limit), 415 (not UTF-8 JSON) or 500 (the model raised; the server keeps serving).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from kbuild.serve.batching import Batcher, Unbatched, retire
from kbuild.serve.codec import (
    BadRequest,
    UnsupportedMediaType,
    check_content_type,
    decode_predict,
    encode_predict,
    parse_body,
    signature_name,
)
from kbuild.serve.repository import ModelVersion, NotFound, Repository
from kbuild.serve.settings import ServerSettings
from kbuild.serve.status import model_metadata, version_status
from kbuild.serve.versions import Refresher

log = logging.getLogger("kbuild.serve")

# NAME, optional /versions/N, then :predict or /metadata or nothing (status).
_MODEL_PATH = re.compile(r"^(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?(?::(?P<verb>\w+)|/(?P<meta>metadata))?$")


class PayloadTooLarge(Exception):
    pass


def create_app(repository: Repository, settings: ServerSettings | None = None,
               report: Callable[[str], None] = log.warning) -> Starlette:
    """The app over `repository`; with `settings.poll_s` and a repository loaded from a folder,
    it polls that folder for new versions (`kbuild.serve.versions`), telling `report`."""
    settings = settings or ServerSettings()
    executor = ThreadPoolExecutor(max_workers=settings.threads, thread_name_prefix="kbuild-model")
    batchers: dict[tuple[str, int, str], Batcher | Unbatched] = {}

    def batcher(model: ModelVersion, key: str) -> Batcher | Unbatched:
        """The signature's batcher, started on first use (versions come and go while serving)."""
        if (model.name, model.version, key) not in batchers:
            sig = model.signatures[key]
            made = Batcher(sig, executor, settings.max_batch_size, settings.max_wait_ms) if settings.batching else Unbatched(sig, executor)
            made.start()
            batchers[(model.name, model.version, key)] = made
        return batchers[(model.name, model.version, key)]

    async def watch(refresher: Refresher) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(settings.poll_s)
            try:  # loading runs in a thread of its own: the event loop keeps answering meanwhile
                retired = await loop.run_in_executor(None, refresher.poll)
            except Exception:  # noqa: BLE001  (the served versions go on; the next poll tries again)
                log.exception("polling %s failed", repository.root)
                continue
            for model in retired:
                for key in [k for k in batchers if k[:2] == (model.name, model.version)]:
                    await retire(batchers.pop(key))

    @contextlib.asynccontextmanager
    async def lifespan(app):
        polling = settings.poll_s > 0 and repository.root is not None
        watcher = asyncio.get_running_loop().create_task(watch(Refresher(repository, report))) if polling else None
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
            for made in batchers.values():
                await made.stop()
            executor.shutdown(wait=False, cancel_futures=True)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "models": {name: sorted(found) for name, found in repository.models.items()}})

    async def models(request: Request) -> JSONResponse:
        match = _MODEL_PATH.match(request.path_params["path"])
        if not match:
            return _error(404, f"no route for {request.url.path}")
        name, version, verb = match["name"], match["version"], match["verb"]
        number = int(version) if version else None
        found = repository.get(name, number)
        if verb is not None:
            if verb != "predict":
                return _error(404, f"unsupported verb :{verb} (this server implements :predict)")
            if request.method != "POST":
                return _error(405, ":predict takes POST")
            return await _predict(request, name, number)
        if request.method != "GET":
            return _error(405, f"{request.url.path} takes GET")
        if match["meta"]:
            return JSONResponse(model_metadata(found))
        shown = [found] if version else [repository.models[name][n] for n in sorted(repository.models[name], reverse=True)]
        return JSONResponse({"model_version_status": [version_status(v) for v in shown]})

    async def _predict(request: Request, name: str, number: int | None) -> JSONResponse:
        check_content_type(request.headers.get("content-type"))
        data = parse_body(await _read_body(request, settings.max_body_bytes))
        # Resolved after the body arrived and submitted with no await between: a version retired
        # meanwhile is never picked, and one picked is retired only after it answers.
        model = repository.get(name, number)
        key = signature_name(data)
        if key not in model.signatures:
            raise NotFound(f"model {model.name!r} version {model.version} has no signature {key!r} "
                           f"(signatures: {', '.join(sorted(model.signatures))})")
        parsed = decode_predict(data, model.signatures[key], settings.max_batch_size)
        try:
            outputs = await batcher(model, key).submit(parsed.batch)
        except Exception as exc:
            log.exception("model %s version %s raised", model.name, model.version)
            return _error(500, f"model {model.name!r} version {model.version} failed: {_first_line(exc)}")
        return JSONResponse(encode_predict(outputs, parsed.rows))

    async def bad_request(request: Request, exc: Exception) -> JSONResponse:
        return _error(400, str(exc))

    async def unsupported(request: Request, exc: Exception) -> JSONResponse:
        return _error(415, str(exc))

    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        return _error(404, str(exc))

    async def too_large(request: Request, exc: Exception) -> JSONResponse:
        return _error(413, str(exc))

    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, exc.detail)

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/v1/models/{path:path}", models, methods=["GET", "POST"]),
    ]
    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return _error(500, f"internal error: {_first_line(exc)}")

    handlers = {BadRequest: bad_request, UnsupportedMediaType: unsupported, NotFound: not_found, PayloadTooLarge: too_large, HTTPException: http_error,
                Exception: server_error}
    return Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it is known to exceed `limit` (header or bytes received)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


# TensorFlow's run-time errors wrap the useful line ("assertion failed: ...") in boilerplate.
_TF_BOILERPLATE = re.compile(r"^(Graph execution error:|Detected at node .*|<stack traces unavailable>|\s*\[\[\{\{node .*)$")


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip() and not _TF_BOILERPLATE.match(line)]
    return " ".join(lines)[:500] or type(exc).__name__
