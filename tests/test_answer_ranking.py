"""Answers from different passages compete by reader score and passage rank (qa.pipeline)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from eval.runner import Prediction, at_threshold
from qa.pipeline import QAPipeline, merge_spans, rank_key
from qa.types import Passage, ReaderOutput, Span

TEXTS = [
    'The theme of the 2021 congress was "Work together".',
    "A list of speakers.",
    "Nothing here either.",
    "Still nothing.",
    'The theme of the 2019 conference was "Balance and wisdom".',
]


def _passages() -> list[Passage]:
    return [
        Passage(f"d{i}:0", f"d{i}", f"T{i}", f"s{i}", 0, len(t), t, 1.0 / (i + 1))
        for i, t in enumerate(TEXTS)
    ]


def _span(p: int, text: str, score: float) -> Span:
    start = TEXTS[p].index(text)
    return Span(p, start, start + len(text), text, score)


class FixedReader:
    name = "fixed"

    def __init__(self, spans: list[Span]) -> None:
        self.spans = spans

    def read(self, question: str, passages: Sequence[Passage], top_n: int = 5) -> ReaderOutput:
        return ReaderOutput(spans=list(self.spans))


def _ask(settings, embedder, spans: list[Span], **update: float):  # type: ignore[no-untyped-def]
    settings = settings.model_copy(update={"no_answer_threshold": 0.01, **update})
    pipeline = QAPipeline(settings, embedder=embedder, reader=FixedReader(spans))
    return pipeline.read("What was the theme?", _passages())


# both near-certain for the reader; the later passage's a little more
NEAR_TIE = [_span(4, "Balance and wisdom", 0.9996), _span(0, "Work together", 0.9991)]


def test_the_first_passage_wins_a_near_tie(fake_settings, fake_embedder) -> None:
    answer = _ask(fake_settings, fake_embedder, NEAR_TIE)
    assert answer.answer == "Work together"
    assert answer.score == pytest.approx(0.9991)  # the reader's score, not the rank key
    assert [c.doc_id for c in answer.citations] == ["d0"]
    assert [text for text, _ in answer.candidates] == ["Work together", "Balance and wisdom"]


def test_weight_zero_ranks_by_the_reader_score_alone(fake_settings, fake_embedder) -> None:
    answer = _ask(fake_settings, fake_embedder, NEAR_TIE, passage_rank_weight=0.0)
    assert answer.answer == "Balance and wisdom"


def test_a_much_surer_later_passage_still_wins(fake_settings, fake_embedder) -> None:
    spans = [_span(4, "Balance and wisdom", 0.99), _span(0, "Work together", 0.2)]
    assert _ask(fake_settings, fake_embedder, spans).answer == "Balance and wisdom"


def test_the_threshold_applies_to_the_reader_score(fake_settings, fake_embedder) -> None:
    # the first passage's span ranks higher but is below the threshold: the next one answers
    spans = [_span(0, "Work together", 0.009), _span(1, "A list of speakers", 0.02)]
    assert rank_key(spans[0], 2.0) > rank_key(spans[1], 2.0)
    answer = _ask(fake_settings, fake_embedder, spans)
    assert answer.answer == "A list of speakers" and answer.score == pytest.approx(0.02)
    # below it everywhere: abstain, reporting the best score seen
    low = [_span(0, "Work together", 0.004), _span(1, "A list of speakers", 0.008)]
    answer = _ask(fake_settings, fake_embedder, low)
    assert answer.answer is None and answer.citations == []
    assert answer.score == pytest.approx(0.008)


def test_a_group_keeps_its_best_score_and_its_best_ranked_text() -> None:
    spans = [_span(4, "Balance and wisdom", 0.9), _span(0, "Work together", 0.5)]
    spans.append(Span(3, 0, 5, "work together", 0.9))  # same answer, later passage, surer
    groups = merge_spans(spans, 2.0)
    work = next(g for g in groups if g.text.lower() == "work together")
    assert work.score == pytest.approx(0.9)
    assert work.text == "Work together"  # passage 0's span ranks above passage 3's
    assert len(work.spans) == 2


def _prediction(candidates: list[tuple[str, float]]) -> Prediction:
    best, score = candidates[0]
    return Prediction(
        "q", "What?", "what", ["b"], best, score, best, score, 0.0, 0.0, 1.0, 1, True,
        candidates=candidates,
    )  # fmt: skip


def test_another_threshold_answers_as_the_pipeline_would() -> None:
    # ranked first but below 0.3: at 0.3 the service answers the second candidate
    prediction = _prediction([("a", 0.2), ("b", 0.6)])
    assert [p.prediction for p in at_threshold([prediction], 0.1)] == ["a"]
    assert [p.prediction for p in at_threshold([prediction], 0.3)] == ["b"]
    assert [p.prediction for p in at_threshold([prediction], 0.7)] == [None]
    assert at_threshold([prediction], 0.3)[0].f1 == 1.0
