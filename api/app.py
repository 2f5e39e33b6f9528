"""FastAPI application: POST /ask, documents, health, and the web page at /."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from api.schemas import (
    AskRequest,
    AskResponse,
    DocumentList,
    DocumentOut,
    DocumentSummary,
    ErrorOut,
    Health,
)
from qa.pipeline import QAPipeline, QuestionError
from qa.settings import Settings
from qa.store import IndexLoadError, IndexNotFoundError

log = logging.getLogger("ragqa.api")
STATIC_DIR = Path(__file__).parent / "static"
_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorOut, "description": "The request is invalid; `detail` says why."},
    503: {"model": ErrorOut, "description": "No usable index; `detail` says how to fix it."},
}


def create_app(settings: Settings | None = None, pipeline: QAPipeline | None = None) -> FastAPI:
    settings = settings or Settings()
    qa = pipeline or QAPipeline(settings)
    # one inference thread: the models are not re-entrant, and the event loop stays free
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ragqa-infer")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            await asyncio.get_running_loop().run_in_executor(executor, qa.warm_up)
        except IndexLoadError as exc:
            log.warning("starting without a usable index: %s", exc)
        yield
        executor.shutdown(wait=True)

    app = FastAPI(
        title="ragqa",
        version="0.1.0",
        description="Extractive question answering over article collections. Every answer is "
        "an exact span of an article, cited by document id and character offsets.",
        lifespan=lifespan,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["content-type"],
        )

    async def run(fn: Any, *args: Any) -> Any:
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)
        except IndexNotFoundError as exc:
            raise HTTPException(503, str(exc)) from None
        except IndexLoadError as exc:
            log.error("index unusable: %s", exc)
            raise HTTPException(503, str(exc)) from None

    @app.post("/ask", response_model=AskResponse, responses=_ERRORS, tags=["questions"])
    async def ask(request: AskRequest) -> dict[str, Any]:
        """Answer a question with the exact span and its citations, or `answer: null`."""
        try:
            qa.check_question(request.question)
        except QuestionError as exc:
            raise HTTPException(422, str(exc)) from None
        answer = await run(qa.ask, request.question, request.top_k)
        return answer.to_dict()

    @app.get("/documents", response_model=DocumentList, responses=_ERRORS, tags=["documents"])
    async def list_documents(
        offset: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=1000)
    ) -> DocumentList:
        snapshot = await run(lambda: qa.snapshot)
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
    )
    async def get_document(doc_id: str) -> DocumentOut:
        """The stored (cleaned) text that citation offsets refer to."""
        doc = await run(qa.document, doc_id)
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
            snapshot = await run(lambda: qa.snapshot)
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

    @app.get("/", include_in_schema=False)
    async def index_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:  # pragma: no cover
        log.exception("unexpected error: %s", exc)
        return JSONResponse({"detail": "internal error; see the server log"}, status_code=500)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
