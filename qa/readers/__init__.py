"""Readers turn retrieved passages into exact answer spans; see :class:`Reader`."""

from __future__ import annotations

from qa.readers.base import EncodeFn, Reader
from qa.settings import Settings

__all__ = ["Reader", "build_reader"]


def build_reader(settings: Settings, encode: EncodeFn | None = None) -> Reader:
    """The reader named by ``settings.reader``.

    ``encode`` (texts -> normalised vectors) gives the heuristic reader its sentence similarity.
    """
    if settings.reader == "transformers":
        from qa.readers.transformers_reader import TransformersReader

        if not settings.reader_model:
            raise ValueError(
                "the transformers reader needs a model: set RAGQA_READER_MODEL (or --reader-model) "
                "to a hub id such as deepset/roberta-base-squad2 or a local checkpoint folder"
            )
        return TransformersReader(
            settings.reader_model,
            device=settings.device,
            max_seq_len=settings.reader_max_seq_len,
            stride=settings.reader_stride,
            max_answer_tokens=settings.max_answer_tokens,
            batch_size=settings.reader_batch_size,
        )
    from qa.readers.heuristic import HeuristicReader

    return HeuristicReader(encode=encode)
