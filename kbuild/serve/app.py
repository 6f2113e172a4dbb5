"""The ASGI app (starlette): TF Serving's REST routes over a Repository.

    GET  /healthz
    GET  /v1/models/NAME[/versions/N]             version status
    GET  /v1/models/NAME[/versions/N]/metadata    signatures (+ kbuild's metadata.json)
    POST /v1/models/NAME[/versions/N]:predict     {"instances": [...]} or {"inputs": ...}

Errors are `{"error": message}` with 400 (bad request), 404 (unknown model, version or
signature), 405, 413 (body over the limit), 415 (not UTF-8 JSON) or 500 (the model raised; the server keeps serving).
"""

from __future__ import annotations

import contextlib
import logging
import re
from concurrent.futures import ThreadPoolExecutor

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from kbuild.serve.batching import Batcher, Unbatched
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

log = logging.getLogger("kbuild.serve")

# NAME, optional /versions/N, then :predict or /metadata or nothing (status).
_MODEL_PATH = re.compile(r"^(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?(?::(?P<verb>\w+)|/(?P<meta>metadata))?$")


class PayloadTooLarge(Exception):
    pass


def create_app(repository: Repository, settings: ServerSettings | None = None) -> Starlette:
    settings = settings or ServerSettings()
    executor = ThreadPoolExecutor(max_workers=settings.threads, thread_name_prefix="kbuild-model")
    batchers = {
        (v.name, v.version, sig.name): (
            Batcher(sig, executor, settings.max_batch_size, settings.max_wait_ms) if settings.batching else Unbatched(sig, executor)
        )
        for v in repository.all_versions()
        for sig in v.signatures.values()
    }

    @contextlib.asynccontextmanager
    async def lifespan(app):
        for batcher in batchers.values():
            batcher.start()
        try:
            yield
        finally:
            for batcher in batchers.values():
                await batcher.stop()
            executor.shutdown(wait=False, cancel_futures=True)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "models": {name: sorted(found) for name, found in repository.models.items()}})

    async def models(request: Request) -> JSONResponse:
        match = _MODEL_PATH.match(request.path_params["path"])
        if not match:
            return _error(404, f"no route for {request.url.path}")
        name, version, verb = match["name"], match["version"], match["verb"]
        found = repository.get(name, int(version) if version else None)
        if verb is not None:
            if verb != "predict":
                return _error(404, f"unsupported verb :{verb} (this server implements :predict)")
            if request.method != "POST":
                return _error(405, ":predict takes POST")
            return await _predict(request, found)
        if request.method != "GET":
            return _error(405, f"{request.url.path} takes GET")
        if match["meta"]:
            return JSONResponse(model_metadata(found))
        shown = [found] if version else [repository.models[name][n] for n in sorted(repository.models[name], reverse=True)]
        return JSONResponse({"model_version_status": [version_status(v) for v in shown]})

    async def _predict(request: Request, model: ModelVersion) -> JSONResponse:
        check_content_type(request.headers.get("content-type"))
        data = parse_body(await _read_body(request, settings.max_body_bytes))
        key = signature_name(data)
        if key not in model.signatures:
            raise NotFound(f"model {model.name!r} version {model.version} has no signature {key!r} "
                           f"(signatures: {', '.join(sorted(model.signatures))})")
        parsed = decode_predict(data, model.signatures[key], settings.max_batch_size)
        try:
            outputs = await batchers[(model.name, model.version, key)].submit(parsed.batch)
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
