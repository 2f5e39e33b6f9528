"""FastAPI application: POST /ask, documents, health, the chat page at / and the widget.

Browser-facing routes: ``/`` (the chat page), ``/widget.js`` (the embeddable widget: one
``<script src="http://HOST/widget.js"></script>`` tag) and ``/view/{doc_id}`` (a document as a
readable page, the answer highlighted); ``GET /documents/{doc_id}`` sends browsers (``Accept:
text/html``) there and gives every other client the JSON it always did. Document text is always
HTML-escaped (server side) or inserted as text (widget): an article's markup stays inert.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import logging
import math
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.observability import Metrics, RequestContextMiddleware
from api.schemas import (
    AskRequest,
    AskResponse,
    DocumentList,
    DocumentOut,
    DocumentSummary,
    ErrorOut,
    Health,
    IngestRequest,
    IngestResult,
    Readiness,
    SkippedFile,
)
from api.security import (
    BodyLimitMiddleware,
    KeyStore,
    RateLimiter,
    Role,
    load_keys,
    presented_key,
    resolve_under,
    retry_after,
)
from embeddings import Embedder
from qa.ingest import Ingestor, check_embedding_model
from qa.loaders import LoadError, discover
from qa.pipeline import QAPipeline, QuestionError
from qa.settings import Settings
from qa.store import IndexLoadError, IndexNotFoundError, IndexSnapshot
from qa.types import Document

log = logging.getLogger("ragqa.api")
STATIC_DIR = Path(__file__).parent / "static"
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "API keys are on and no valid key was given."},
    403: {"model": ErrorOut, "description": "The key's role may not use this endpoint."},
    413: {"model": ErrorOut, "description": "The request body is over RAGQA_MAX_BODY_BYTES."},
    422: {"model": ErrorOut, "description": "The request is invalid; `detail` says why."},
    429: {"model": ErrorOut, "description": "Rate limit reached; retry after `Retry-After` s."},
    503: {"model": ErrorOut, "description": "No usable index; `detail` says how to fix it."},
}
# pages of this service load scripts, styles and data from the service only (no CDN, no inline
# code); the document view runs no script at all
_PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'"
)
_VIEW_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'"
)
_PAGE_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


def wants_html(request: Request) -> bool:
    """A browser navigating (``Accept: text/html...``), not an API client asking for JSON."""
    accept = request.headers.get("accept", "").lower()
    return "text/html" in accept and "application/json" not in accept


def _offset(value: str | None) -> int | None:
    """A character offset from a query parameter; None unless it is a plain decimal number."""
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 12:
        return None
    return int(value)


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n"
        '<link rel="stylesheet" href="/static/style.css">\n</head>\n'
        f'<body class="view">\n{body}\n</body>\n</html>\n'
    )


def render_document_page(doc: Document, start: int | None, end: int | None) -> str:
    """The document as a readable page; ``text[start:end]`` is highlighted as ``#answer``.

    Every piece of the document is HTML-escaped: markup in an article is shown, never run.
    """
    esc = html.escape
    text = doc.text
    jump = ""
    if start is not None and end is not None and 0 <= start < end <= len(text):
        body_text = (
            f"{esc(text[:start])}"
            f'<mark id="answer" tabindex="-1">{esc(text[start:end])}</mark>'
            f"{esc(text[end:])}"
        )
        jump = '<p class="jump"><a href="#answer">Jump to the highlighted answer</a></p>'
    else:
        body_text = esc(text)
    meta = [f"<li>Source: {esc(doc.source)}</li>"]
    if doc.date:
        meta.append(f"<li>Date: {esc(doc.date)}</li>")
    if doc.url and doc.url.lower().startswith(("http://", "https://")):
        meta.append(
            f'<li><a href="{esc(doc.url)}" rel="noopener noreferrer nofollow">Original article'
            "</a></li>"
        )
    body = (
        '<header class="view-top"><a href="/">← Ask the articles</a></header>\n'
        '<main class="doc">\n'
        f"<h1>{esc(doc.title or doc.doc_id)}</h1>\n"
        f'<ul class="doc-meta">{"".join(meta)}</ul>\n{jump}\n'
        f'<div class="doc-text">{body_text}</div>\n</main>'
    )
    return _page(doc.title or doc.doc_id, body)


def render_message_page(title: str, message: str) -> str:
    return _page(
        title,
        '<header class="view-top"><a href="/">← Ask the articles</a></header>\n'
        f'<main class="doc"><h1>{html.escape(title)}</h1><p>{html.escape(message)}</p></main>',
    )


def _json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (inf, nan) replaced by its name."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _folder_bytes(snapshot: IndexSnapshot, root: Path) -> int:
    folder = root / "snapshots" / snapshot.name
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def create_app(
    settings: Settings | None = None,
    pipeline: QAPipeline | None = None,
    ingest_embedder: Any = None,
) -> FastAPI:
    """The service. ``ingest_embedder`` (tests) replaces the model POST /ingest loads."""
    settings = settings or Settings()
    keys = KeyStore(load_keys(settings.api_keys, settings.api_keys_file))
    limiter = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
    metrics = Metrics()
    qa = pipeline or QAPipeline(settings)
    # one inference thread: the models are not re-entrant, and the event loop stays free;
    # ingestion over HTTP runs beside it, with its own embedder, so questions keep being answered
    pools: dict[str, ThreadPoolExecutor] = {}

    def pool(name: str) -> ThreadPoolExecutor:
        """One thread per job, made when first needed (and again after a shutdown)."""
        if name not in pools:
            pools[name] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ragqa-{name}")
        return pools[name]

    # ingestion over HTTP runs beside it, with its own embedder, so questions keep being answered
    state: dict[str, Any] = {"warm": False, "checked": None, "ingestor": None, "bytes": (None, 0)}

    def live_snapshot() -> IndexSnapshot:
        """The live snapshot, checked once against the loaded embedding model (name, dimension)."""
        snapshot = qa.snapshot
        if state["checked"] != snapshot.name:
            check_embedding_model(snapshot, settings, dimension=qa.embedder.dimension)
            state["checked"] = snapshot.name
        return snapshot

    def warm_up() -> None:
        live_snapshot()
        qa.warm_up()
        state["warm"] = True

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            await asyncio.get_running_loop().run_in_executor(pool("infer"), warm_up)
        except IndexLoadError as exc:
            log.error("starting without a usable index: %s", exc)
        yield
        log.info("shutting down: in-flight requests have finished")
        for name in ("ingest", "infer", "status"):
            if name in pools:
                pools.pop(name).shutdown(wait=True)

    app = FastAPI(
        title="ragqa",
        version="0.1.0",
        description="Extractive question answering over article collections. Every answer is "
        "an exact span of an article, cited by document id and character offsets.",
        lifespan=lifespan,
    )
    # outermost last: request id and metrics see everything, the body limit sees it before CORS
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["content-type", "authorization", "x-api-key", "x-request-id"],
            expose_headers=["x-request-id", "retry-after"],
        )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)

    def guard(role: Role) -> Any:
        """A dependency: the caller's key must allow ``role``; then the rate limit applies."""

        async def check(request: Request) -> None:
            key = presented_key(
                request.headers.get("authorization"), request.headers.get("x-api-key")
            )
            client = f"ip:{request.client.host if request.client else '-'}"
            if keys.enabled:
                if key is None:
                    raise HTTPException(
                        401,
                        "an API key is required: send `Authorization: Bearer KEY` or "
                        "`X-API-Key: KEY`",
                        headers={"WWW-Authenticate": "Bearer"},
                    )
                found = keys.role_of(key)
                if found is None:
                    raise HTTPException(
                        401, "the API key is not valid", headers={"WWW-Authenticate": "Bearer"}
                    )
                if role == "admin" and found != "admin":
                    raise HTTPException(403, "this endpoint needs an API key with role 'admin'")
                client = "key:" + hashlib.sha256(key.encode()).hexdigest()[:16]
            wait = limiter.acquire(client)
            if wait > 0:
                raise HTTPException(
                    429,
                    "too many requests; retry after the number of seconds in Retry-After",
                    headers={"Retry-After": retry_after(wait)},
                )

        return Depends(check)

    asker, admin = guard("ask"), guard("admin")

    async def run(fn: Any, *args: Any, on: str = "infer") -> Any:
        """``fn`` on a worker thread: model inference on "infer"; index lookups for health
        checks and documents on "status", so that they never queue behind questions."""
        try:
            return await asyncio.get_running_loop().run_in_executor(pool(on), fn, *args)
        except IndexNotFoundError as exc:
            raise HTTPException(503, str(exc)) from None
        except IndexLoadError as exc:
            log.error("index unusable: %s", exc)
            raise HTTPException(503, str(exc)) from None

    def ask_checked(question: str, top_k: int | None) -> Any:
        live_snapshot()
        return qa.ask(question, top_k)

    def document_checked(doc_id: str) -> Document | None:
        return live_snapshot().documents.get(doc_id)

    @app.post(
        "/ask",
        response_model=AskResponse,
        responses=_ERRORS,
        tags=["questions"],
        dependencies=[asker],
    )
    async def ask(request: AskRequest) -> dict[str, Any]:
        """Answer a question with the exact span and its citations, or `answer: null`."""
        try:
            qa.check_question(request.question)
        except QuestionError as exc:
            raise HTTPException(422, str(exc)) from None
        answer = await run(ask_checked, request.question, request.top_k)
        return answer.to_dict()

    @app.get(
        "/documents",
        response_model=DocumentList,
        responses=_ERRORS,
        tags=["documents"],
        dependencies=[asker],
    )
    async def list_documents(
        offset: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=1000)
    ) -> DocumentList:
        snapshot = await run(live_snapshot, on="status")
        docs = list(snapshot.documents.values())
        return DocumentList(
            total=len(docs),
            documents=[
                DocumentSummary(doc_id=d.doc_id, title=d.title, source=d.source, chars=len(d.text))
                for d in docs[offset : offset + limit]
            ],
        )

    @app.get(
        "/documents/{doc_id}",
        response_model=DocumentOut,
        responses={**_ERRORS, 404: {"model": ErrorOut}},
        tags=["documents"],
        dependencies=[asker],
    )
    async def get_document(doc_id: str, request: Request, response: Response) -> Any:
        """The stored (cleaned) text that citation offsets refer to.

        Browsers (``Accept: text/html`` without JSON) are redirected to the readable page
        ``/view/{doc_id}``; ``?start=&end=`` there highlights a citation's span.
        """
        if wants_html(request):
            location = f"/view/{quote(doc_id, safe='')}"
            start = _offset(request.query_params.get("start"))
            end = _offset(request.query_params.get("end"))
            if start is not None and end is not None:
                location += "?" + urlencode({"start": start, "end": end}) + "#answer"
            return RedirectResponse(location, status_code=303, headers={"Vary": "Accept"})
        response.headers["Vary"] = "Accept"
        doc = await run(document_checked, doc_id, on="status")
        if doc is None:
            raise HTTPException(404, f"no document with id {doc_id!r}")
        return DocumentOut(
            doc_id=doc.doc_id,
            title=doc.title,
            source=doc.source,
            text=doc.text,
            url=doc.url,
            date=doc.date,
        )

    @app.get("/health", response_model=Health, tags=["operations"])
    async def health() -> JSONResponse:
        reader = getattr(qa.reader, "name", type(qa.reader).__name__)
        try:
            snapshot = await run(live_snapshot, on="status")
        except HTTPException as exc:
            body = Health(
                status="no_index",
                documents=0,
                chunks=0,
                snapshot=None,
                reader=reader,
                embedding_model=settings.embedding_model,
                detail=str(exc.detail),
            )
            return JSONResponse(body.model_dump(), status_code=503)
        body = Health(
            status="ok",
            documents=len(snapshot.documents),
            chunks=len(snapshot.chunks),
            snapshot=snapshot.name,
            reader=reader,
            embedding_model=settings.embedding_model,
        )
        return JSONResponse(body.model_dump())

    @app.get("/live", tags=["operations"])
    async def live() -> dict[str, str]:
        """Liveness: the process answers HTTP (nothing else is checked)."""
        return {"status": "alive"}

    @app.get(
        "/ready",
        response_model=Readiness,
        responses={503: {"model": Readiness}},
        tags=["operations"],
    )
    async def ready() -> JSONResponse:
        """Readiness: 200 once the index and the models are loaded, else 503 with the reason."""
        try:
            snapshot = await run(live_snapshot, on="status")
        except HTTPException as exc:
            metrics.ready.set(0)
            body = Readiness(
                status="not_ready", index=False, models=state["warm"], detail=exc.detail
            )
            return JSONResponse(body.model_dump(), status_code=503)
        if not state["warm"]:  # started without an index, which is there now: load the models
            with suppress(HTTPException):
                await run(warm_up)
        if not state["warm"]:
            metrics.ready.set(0)
            body = Readiness(
                status="not_ready", index=True, models=False, detail="the models are loading"
            )
            return JSONResponse(body.model_dump(), status_code=503)
        metrics.ready.set(1)
        body = Readiness(status="ready", index=True, models=True, snapshot=snapshot.name)
        return JSONResponse(body.model_dump())

    @app.get("/metrics", tags=["operations"], dependencies=[admin], response_class=Response)
    async def prometheus_metrics() -> Response:
        """Prometheus metrics: requests, latencies, errors, index size (admin key when keys on)."""
        snapshot = qa._snapshot  # the loaded one; a scrape never loads an index
        if snapshot is not None:
            metrics.documents.set(len(snapshot.documents))
            metrics.chunks.set(len(snapshot.chunks))
            name, size = state["bytes"]
            if name != snapshot.name:
                try:
                    size = _folder_bytes(snapshot, Path(settings.index_dir))
                except OSError:
                    size = 0
                state["bytes"] = (snapshot.name, size)
            metrics.index_bytes.set(size)
        metrics.ready.set(1 if state["warm"] and snapshot is not None else 0)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def ingest_files(body: IngestRequest) -> IngestResult:
        root = Path(settings.ingest_root or ".")
        files, errors = discover([resolve_under(root, p) for p in body.paths])
        inside: list[Path] = []
        for f in files:  # a symlink below the root may point elsewhere: refuse it
            try:
                resolve_under(root, str(f.resolve().relative_to(root.resolve())))
                inside.append(f)
            except ValueError:
                errors.append(LoadError(f.name, "outside the ingest root"))
        if state["ingestor"] is None:
            embedder = ingest_embedder or Embedder(
                settings.embedding_model, settings.device, settings.embedding_batch_size
            )
            state["ingestor"] = Ingestor(settings, embedder)
        report = state["ingestor"].ingest(inside, rebuild=body.rebuild, progress=False)
        skipped = [SkippedFile(path=e.path, reason=e.reason) for e in errors + report.errors]
        return IngestResult(
            files=len(inside),
            added=len(report.added),
            replaced=len(report.replaced),
            unchanged=report.unchanged,
            skipped=skipped,
            documents=report.n_documents,
            chunks=report.n_chunks,
            written=report.written,
        )

    @app.post(
        "/ingest",
        response_model=IngestResult,
        responses={**_ERRORS, 400: {"model": ErrorOut}, 404: {"model": ErrorOut}},
        tags=["operations"],
        dependencies=[admin],
    )
    async def ingest(body: IngestRequest) -> IngestResult:
        """Ingest files or folders below RAGQA_INGEST_ROOT (admin; off when it is unset)."""
        if settings.ingest_root is None:
            raise HTTPException(
                404, "ingestion over HTTP is off; set RAGQA_INGEST_ROOT to a folder"
            )
        for p in body.paths:
            try:
                resolve_under(Path(settings.ingest_root), p)
            except ValueError as exc:
                raise HTTPException(400, f"path refused: {exc}") from None
        try:
            result = await asyncio.get_running_loop().run_in_executor(
                pool("ingest"), ingest_files, body
            )
        except IndexLoadError as exc:
            metrics.ingestions.labels("failed").inc()
            raise HTTPException(503, str(exc)) from None
        metrics.ingestions.labels("ok").inc()
        return result

    @app.get(
        "/view/{doc_id}",
        include_in_schema=False,
        response_class=HTMLResponse,
        dependencies=[asker],
    )
    async def view_document(doc_id: str, request: Request) -> HTMLResponse:
        """A document as a page for people; ``?start=&end=`` highlights the answer."""
        headers = {**_PAGE_HEADERS, "Content-Security-Policy": _VIEW_CSP}
        try:
            doc = await run(document_checked, doc_id, on="status")
        except HTTPException as exc:
            page = render_message_page("The articles are not available", str(exc.detail))
            return HTMLResponse(page, status_code=exc.status_code, headers=headers)
        if doc is None:
            page = render_message_page("Article not found", f"There is no article {doc_id!r}.")
            return HTMLResponse(page, status_code=404, headers=headers)
        start = _offset(request.query_params.get("start"))
        end = _offset(request.query_params.get("end"))
        return HTMLResponse(render_document_page(doc, start, end), headers=headers)

    @app.get("/widget.js", include_in_schema=False)
    async def widget_script() -> FileResponse:
        """The chat widget: `<script src="http://HOST/widget.js"></script>` on any page."""
        return FileResponse(
            STATIC_DIR / "widget.js",
            media_type="text/javascript; charset=utf-8",
            headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
        )

    @app.get("/", include_in_schema=False)
    async def index_page() -> FileResponse:
        return FileResponse(
            STATIC_DIR / "index.html",
            headers={**_PAGE_HEADERS, "Content-Security-Policy": _PAGE_CSP},
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's 422, made safe for inputs JSON cannot carry back (1e999 is inf)."""
        return JSONResponse({"detail": _json_safe(jsonable_encoder(exc.errors()))}, 422)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:  # pragma: no cover
        log.exception("unexpected error: %s", exc)
        return JSONResponse({"detail": "internal error; see the server log"}, status_code=500)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
