"""Request and response schemas of the HTTP API (the OpenAPI docs at /docs come from these)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(
        ...,
        description="The question, in plain words.",
        examples=["Who closed the 2019 conference?"],
    )
    top_k: int | None = Field(None, ge=1, le=50, description="Passages to read (default 5).")

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the question is empty")
        return value


class CitationOut(BaseModel):
    doc_id: str
    title: str
    source: str
    chunk_id: str
    start: int = Field(description="Character offset into the document text.")
    end: int
    snippet: str
    score: float


class PassageOut(BaseModel):
    doc_id: str
    title: str
    chunk_id: str
    start: int
    end: int
    text: str
    score: float


class AskResponse(BaseModel):
    question: str
    answer: str | None = Field(description="The exact answer span, or null when abstaining.")
    score: float
    confidence: float | None = Field(
        None,
        description="The answer span's probability (p_start * p_end) where the reader gives one: "
        "how likely this exact span is right, for display; score is what the no-answer "
        "threshold applies to. Null when abstaining or for the heuristic reader.",
    )
    citations: list[CitationOut]
    passages: list[PassageOut]
    timings_ms: dict[str, float]


class DocumentOut(BaseModel):
    doc_id: str
    title: str
    source: str
    text: str
    url: str | None = None
    date: str | None = None


class DocumentSummary(BaseModel):
    doc_id: str
    title: str
    source: str
    chars: int


class DocumentList(BaseModel):
    total: int
    documents: list[DocumentSummary]


class Health(BaseModel):
    status: str
    documents: int
    chunks: int
    snapshot: str | None
    reader: str
    embedding_model: str
    detail: str | None = None


class ErrorOut(BaseModel):
    detail: str | list[dict[str, object]]


class Readiness(BaseModel):
    status: str = Field(description="'ready' or 'not_ready'.")
    index: bool = Field(description="The index is loaded and fits the embedding model.")
    models: bool = Field(description="The embedding model and the reader are loaded.")
    snapshot: str | None = None
    detail: str | None = None


class IngestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paths: list[str] = Field(
        ...,
        min_length=1,
        max_length=100,
        description="Files or folders, relative to RAGQA_INGEST_ROOT.",
        examples=[["news/2024"]],
    )
    rebuild: bool = Field(False, description="Start a new index from these paths.")


class SkippedFile(BaseModel):
    path: str
    reason: str


class IngestResult(BaseModel):
    files: int
    added: int
    replaced: int
    unchanged: int
    skipped: list[SkippedFile]
    documents: int
    chunks: int
    written: bool
