"""Shared fixtures: a fast fake embedder for ingestion tests, a real seeds index for end to end."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "seeds"
SHARED = REPO.parent / "shared"


def save_tiny_bert(model_class: type, folder: Path) -> Path:
    """A 2-layer BERT of ``model_class`` (``BertModel``, ``BertForQuestionAnswering``) with random
    weights (seed 0) and the packaged MiniLM tokenizer, saved in ``folder``: fast and hermetic."""
    import torch
    from transformers import AutoTokenizer, BertConfig

    from embeddings import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("all-MiniLM-L6-v2"))
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    model_class(config).eval().save_pretrained(folder)
    return folder


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "browser: end-to-end tests in headless Chromium (tests/test_browser.py); "
        "select with -m browser, leave out with -m 'not browser'",
    )


class FakeEmbedder:
    """Hashed bag of words: deterministic, instant, and similar texts get similar vectors."""

    model_name = "fake-embedder"
    dimension = 64

    def __init__(self) -> None:
        self.encoded: list[str] = []

    def encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        self.encoded.extend(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int(hashlib.md5(word.encode()).hexdigest(), 16)
                out[row, h % self.dimension] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-9)

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(re.findall(r"\w+|[^\w\s]", t)) for t in texts]


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def fake_settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    from qa.settings import Settings

    return Settings(index_dir=tmp_path / "index", embedding_model="fake-embedder", chunk_tokens=60)


@pytest.fixture(scope="session")
def seeds_pipeline(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The real thing: packaged MiniLM, spaCy, the default reader, the seeds indexed."""
    from qa.ingest import Ingestor
    from qa.pipeline import QAPipeline
    from qa.settings import Settings

    settings = Settings(index_dir=tmp_path_factory.mktemp("seeds") / "index")
    pipeline = QAPipeline(settings)
    Ingestor(settings, pipeline.embedder).ingest([SEEDS], progress=False)
    return pipeline
