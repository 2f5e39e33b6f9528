"""Fuzz the HTTP API from its own OpenAPI schema (schemathesis): no input may cause a 5xx.

The app runs on a small index with the fast fake embedder and a reader that reads every passage
(so /ask goes through retrieval and reading for every generated question); ingestion over HTTP
is on, below a folder of its own. ``RAGQA_FUZZ_EXAMPLES`` sets the cases per operation.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from api.app import create_app
from qa.ingest import Ingestor
from qa.pipeline import QAPipeline
from qa.settings import Settings
from qa.types import Passage, ReaderOutput, Span

from .conftest import SEEDS, FakeEmbedder

EXAMPLES = int(os.environ.get("RAGQA_FUZZ_EXAMPLES", "60"))
CASES: list[int] = []


class _FirstWords:
    """Answers with the first word of every passage: exercises merging and citing."""

    name = "first-words"

    def read(self, question: str, passages: Sequence[Passage], top_n: int = 5) -> ReaderOutput:
        spans = []
        for i, p in enumerate(passages):
            end = len(p.text.split(" ", 1)[0])
            spans.append(Span(i, 0, end, p.text[:end], 0.5 + 0.01 * i))
        return ReaderOutput(spans)


def _app():  # type: ignore[no-untyped-def]
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="ragqa-fuzz-"))
    (root / "inbox").mkdir()
    (root / "inbox" / "a.txt").write_text("Fuzz article\n\nThe dam opened in 1931.", "utf-8")
    s = Settings(
        index_dir=root / "index",
        embedding_model="fake-embedder",
        chunk_tokens=60,
        ingest_root=root / "inbox",
    )
    Ingestor(s, FakeEmbedder()).ingest([SEEDS], progress=False)
    pipeline = QAPipeline(s, embedder=FakeEmbedder(), reader=_FirstWords())  # type: ignore[arg-type]
    return create_app(s, pipeline=pipeline, ingest_embedder=FakeEmbedder())


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    codes = sorted(set(CASES))
    print(f"\nfuzz: {len(CASES)} cases, status codes {codes}, server errors 0")


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_input_makes_a_server_error(case) -> None:  # type: ignore[no-untyped-def]
    response = case.call()
    CASES.append(response.status_code)
    case.validate_response(response, checks=[not_a_server_error])
    assert response.status_code < 500, (case.method, case.path, response.text[:300])
