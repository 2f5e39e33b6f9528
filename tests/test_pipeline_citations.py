"""Merged answers cite only places whose text is exactly the answer."""

from __future__ import annotations

from collections.abc import Sequence

from qa.pipeline import QAPipeline
from qa.types import Passage, ReaderOutput, Span

TEXT = "The motto was \"Let's work together\". Later: Let's work together, again."


class FixedReader:
    name = "fixed"

    def read(self, question: str, passages: Sequence[Passage], top_n: int = 5) -> ReaderOutput:
        quoted = TEXT.index('"Let')
        plain = TEXT.index("Later: ") + len("Later: ")
        return ReaderOutput(
            spans=[
                Span(0, plain, plain + 19, TEXT[plain : plain + 19], 0.9),
                Span(0, quoted, quoted + 20, TEXT[quoted : quoted + 20], 0.5),
            ]
        )


def test_merged_spans_cite_the_exact_answer(fake_settings, fake_embedder) -> None:
    pipeline = QAPipeline(fake_settings, embedder=fake_embedder, reader=FixedReader())
    passage = Passage("d:0", "d", "T", "s", 100, 100 + len(TEXT), TEXT, 1.0)
    answer = pipeline.read("What was the motto?", [passage])
    assert answer.answer == "Let's work together"
    assert len(answer.citations) == 2
    for c in answer.citations:
        assert TEXT[c.start - 100 : c.end - 100] == "Let's work together"
