"""Readers turn retrieved passages into exact answer spans; see :class:`Reader`."""

from __future__ import annotations

from pathlib import Path

from qa.readers.base import EncodeFn, Reader
from qa.settings import PACKAGED_READER, Settings

__all__ = ["PACKAGED_READER_DIR", "Reader", "build_reader", "resolve_reader_model"]

PACKAGED_READER_DIR = Path(__file__).resolve().parents[1] / "reader_model"


def resolve_reader_model(name: str) -> str:
    """The shipped model's folder for its name; any other hub id or path as given."""
    if name != PACKAGED_READER:
        return name
    if not (PACKAGED_READER_DIR / "config.json").is_file():
        raise ValueError(
            f"the packaged reader is missing from {PACKAGED_READER_DIR}: reinstall ragqa, "
            "train one with `ragqa train-reader`, or set RAGQA_READER=heuristic"
        )
    return str(PACKAGED_READER_DIR)


def build_reader(settings: Settings, encode: EncodeFn | None = None) -> Reader:
    """The reader named by ``settings.reader``.

    ``encode`` (texts -> normalised vectors) gives the heuristic reader its sentence similarity.
    """
    if settings.reader == "transformers":
        from qa.readers.transformers_reader import TransformersReader

        if not settings.reader_model:
            raise ValueError(
                "the transformers reader needs a model: set RAGQA_READER_MODEL (or --reader-model) "
                f"to {PACKAGED_READER}, a hub id such as deepset/roberta-base-squad2 or a local "
                "checkpoint folder"
            )
        return TransformersReader(
            resolve_reader_model(settings.reader_model),
            quantize=settings.reader_quantize,
            device=settings.device,
            max_seq_len=settings.reader_max_seq_len,
            stride=settings.reader_stride,
            max_answer_tokens=settings.max_answer_tokens,
            batch_size=settings.reader_batch_size,
            backend=settings.reader_backend,
            cache_dir=settings.embedding_cache_dir,
            span_score=settings.reader_span_score,
        )
    from qa.readers.heuristic import HeuristicReader

    return HeuristicReader(encode=encode)
