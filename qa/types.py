"""Typed records that flow through the pipeline: ingest, chunk, retrieve, read, answer."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Document:
    """One cleaned article. ``text`` is the stored text every offset refers to."""

    doc_id: str
    title: str
    text: str
    source: str
    content_hash: str
    url: str | None = None
    date: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Document:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})


@dataclass(frozen=True, slots=True)
class Chunk:
    """A span ``[start, end)`` of a document's text, the unit that is embedded and retrieved."""

    chunk_id: str
    doc_id: str
    start: int
    end: int
    text: str


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrieved chunk with its scores and the document fields a reader or a citation needs."""

    chunk_id: str
    doc_id: str
    title: str
    source: str
    start: int
    end: int
    text: str
    score: float
    dense_score: float | None = None
    lexical_score: float | None = None


@dataclass(frozen=True, slots=True)
class Span:
    """A candidate answer found by a reader: ``passage.text[start:end]``."""

    passage_index: int
    start: int
    end: int
    text: str
    score: float
    # the reader's probability that this span is the answer, where it has one (the transformers
    # reader: p_start * p_end, whatever its span score); a confidence to show, not to rank by
    probability: float | None = None


@dataclass(frozen=True, slots=True)
class ReaderOutput:
    """What a reader returns for one question: ranked spans and how likely no span answers."""

    spans: list[Span]
    no_answer_score: float = 0.0


@dataclass(frozen=True, slots=True)
class Citation:
    """Where an answer stands: ``document.text[start:end] == answer``."""

    doc_id: str
    title: str
    source: str
    chunk_id: str
    start: int
    end: int
    snippet: str
    score: float


@dataclass(slots=True)
class Answer:
    """The service's reply to a question. ``answer is None`` means it abstained."""

    question: str
    answer: str | None
    score: float
    citations: list[Citation] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    candidates: list[tuple[str, float]] = field(default_factory=list)
    confidence: float | None = None  # the answer span's probability, where the reader gives one

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape shared by the API and ``ragqa ask --json``."""
        return {
            "question": self.question,
            "answer": self.answer,
            "score": round(self.score, 4),
            "confidence": None if self.confidence is None else round(self.confidence, 4),
            "citations": [
                {
                    "doc_id": c.doc_id,
                    "title": c.title,
                    "source": c.source,
                    "chunk_id": c.chunk_id,
                    "start": c.start,
                    "end": c.end,
                    "snippet": c.snippet,
                    "score": round(c.score, 4),
                }
                for c in self.citations
            ],
            "passages": [
                {
                    "doc_id": p.doc_id,
                    "title": p.title,
                    "chunk_id": p.chunk_id,
                    "start": p.start,
                    "end": p.end,
                    "text": p.text,
                    "score": round(p.score, 6),
                }
                for p in self.passages
            ],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }
