"""The reader interface: a question and retrieved passages in, ranked exact spans out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from qa.types import Passage, ReaderOutput

EncodeFn = Callable[[Sequence[str]], np.ndarray]
"""Texts -> L2-normalised vectors (one row a text)."""


@runtime_checkable
class Reader(Protocol):
    """Extracts answers as exact spans of the passages it is given.

    Every returned span satisfies ``passages[i].text[span.start:span.end] == span.text`` and
    carries a score in [0, 1]; higher is more confident. Spans are sorted best first.
    """

    name: str

    def read(self, question: str, passages: Sequence[Passage], top_n: int = 5) -> ReaderOutput: ...
