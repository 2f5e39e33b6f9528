"""The question-answering pipeline: embed the question, retrieve passages, read, merge, cite.

The CLI, the HTTP API and the evaluator all call :meth:`QAPipeline.ask`, so they give the same
answers. The pipeline follows the index directory: when an ingestion publishes a new snapshot,
the next question is answered from it (the swap is atomic; a half-written index is never seen).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from embeddings import Embedder
from qa.ingest import check_embedding_model
from qa.normalize import normalize_answer
from qa.readers import Reader, build_reader
from qa.retrieve import HybridRetriever
from qa.settings import Settings
from qa.store import IndexSnapshot, IndexStore
from qa.types import Answer, Citation, Document, Passage, Span

SNIPPET_CONTEXT = 90


class QuestionError(ValueError):
    """The question cannot be asked (empty, too long)."""


@dataclass(slots=True)
class AnswerGroup:
    """Spans with the same normalised text: ``score`` is their best reader score (what the
    no-answer threshold applies to), ``rank_key`` their best :func:`rank_key` (what orders the
    groups), ``text`` the text of the span that gave it."""

    text: str
    score: float
    rank_key: float
    spans: list[Span]


def rank_key(span: Span, passage_rank_weight: float) -> float:
    """How a span ranks against spans of other passages: the log-odds of its reader score less
    ``passage_rank_weight * ln(1 + rank)``, ``rank`` being its passage's place in the retrieval
    order (0 for the first). In odds, the reader's odds times ``(1 + rank) ** -weight``: a prior
    that the retriever's first passages hold the answer more often, as retriever-reader systems
    combine the two scores (BERTserini). The reader's score alone (weight 0) often ties near 1
    between passages about different events ("the theme" of the 2019 and of the 2021
    conference); ``bench/answer_ranking.py`` measures the weight."""
    score = min(max(span.score, 1e-12), 1.0 - 1e-12)
    return math.log(score / (1.0 - score)) - passage_rank_weight * math.log1p(span.passage_index)


def make_snippet(text: str, start: int, end: int, context: int = SNIPPET_CONTEXT) -> str:
    """The answer with about ``context`` characters either side, cut at word boundaries."""
    left = max(0, start - context)
    right = min(len(text), end + context)
    if left > 0:
        space = text.find(" ", left, start)
        left = space + 1 if space != -1 else left
    if right < len(text):
        space = text.rfind(" ", end, right)
        right = space if space != -1 else right
    snippet = text[left:right].replace("\n", " ")
    return ("…" if left > 0 else "") + snippet + ("…" if right < len(text) else "")


def merge_spans(spans: Sequence[Span], passage_rank_weight: float = 0.0) -> list[AnswerGroup]:
    """Group spans with the same normalised text (a group keeps every place it was found),
    best :func:`rank_key` first."""
    groups: dict[str, AnswerGroup] = {}
    for span in spans:
        key = normalize_answer(span.text) or span.text.strip().lower()
        ranked = rank_key(span, passage_rank_weight)
        group = groups.get(key)
        if group is None:
            groups[key] = AnswerGroup(span.text, span.score, ranked, [span])
            continue
        group.spans.append(span)
        group.score = max(group.score, span.score)
        if ranked > group.rank_key:
            group.text, group.rank_key = span.text, ranked
    return sorted(groups.values(), key=lambda g: -g.rank_key)


def select_answer(groups: Sequence[AnswerGroup], threshold: float) -> AnswerGroup | None:
    """The first group (in rank order) whose score reaches the no-answer threshold, if any."""
    return next((g for g in groups if g.score >= threshold), None)


class QAPipeline:
    def __init__(
        self,
        settings: Settings,
        embedder: Embedder | None = None,
        reader: Reader | None = None,
        store: IndexStore | None = None,
    ) -> None:
        self.settings = settings
        self.embedder = embedder or Embedder.from_settings(settings)
        self.reader = reader or build_reader(settings, encode=self.embedder.encode)
        self.store = store or IndexStore(settings.index_dir)
        self._snapshot: IndexSnapshot | None = None
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- index
    @property
    def snapshot(self) -> IndexSnapshot:
        """The live snapshot, reloaded when an ingestion has published a newer one."""
        current = self.store.current_name()
        snap = self._snapshot
        if snap is None or snap.name != current:
            with self._lock:
                if self._snapshot is None or self._snapshot.name != self.store.current_name():
                    loaded = self.store.load()
                    check_embedding_model(loaded, self.settings)
                    self._snapshot = loaded
                snap = self._snapshot
        return snap

    def document(self, doc_id: str) -> Document | None:
        return self.snapshot.documents.get(doc_id)

    def warm_up(self) -> None:
        """Load the index and the models now rather than on the first question."""
        _ = self.snapshot
        self.ask("warm up")

    # ---------------------------------------------------------------- answering
    def check_question(self, question: str) -> str:
        cleaned = question.strip()
        if not cleaned:
            raise QuestionError("the question is empty")
        if len(cleaned) > self.settings.max_question_chars:
            raise QuestionError(
                f"the question is {len(cleaned)} characters long; the limit is "
                f"{self.settings.max_question_chars}"
            )
        return cleaned

    def retrieve(
        self, question: str, top_k: int | None = None
    ) -> tuple[list[Passage], dict[str, float]]:
        snapshot = self.snapshot
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        vector = None
        if self.settings.retrieval_mode != "lexical":
            vector = self.embedder.encode_query(question)
        timings["embed"] = (time.perf_counter() - t0) * 1000
        t1 = time.perf_counter()
        retriever = HybridRetriever(
            snapshot, self.settings.candidate_k, self.settings.rrf_k, self.settings.retrieval_mode
        )
        passages = retriever.retrieve(question, vector, top_k or self.settings.top_k)
        timings["retrieve"] = (time.perf_counter() - t1) * 1000
        return passages, timings

    def read(self, question: str, passages: Sequence[Passage]) -> Answer:
        """Read given passages (no retrieval) and decide: answer with citations, or abstain."""
        t0 = time.perf_counter()
        output = self.reader.read(question, passages, top_n=20)
        read_ms = (time.perf_counter() - t0) * 1000
        groups = merge_spans(output.spans, self.settings.passage_rank_weight)
        # every group (the reader gives at most 20 spans), so eval.runner.at_threshold can
        # tell exactly what another threshold would answer
        candidates = [(g.text, g.score) for g in groups]
        best = select_answer(groups, self.settings.answer_threshold)
        if best is None:
            score = max((g.score for g in groups), default=0.0)
            return Answer(question, None, score, [], list(passages), {"read": read_ms}, candidates)
        score = best.score
        top = max(best.spans, key=lambda s: rank_key(s, self.settings.passage_rank_weight))
        answer_text = top.text
        citations = []
        seen: set[tuple[str, int, int]] = set()
        for found in sorted(
            best.spans, key=lambda s: -rank_key(s, self.settings.passage_rank_weight)
        ):
            # spans merged with the answer may differ in punctuation or articles ('"Let's go'
            # for "Let's go"): cite the answer's exact text inside them, or leave them out
            inner = found.text.find(answer_text)
            if inner < 0:
                continue
            span = Span(
                found.passage_index,
                found.start + inner,
                found.start + inner + len(answer_text),
                answer_text,
                found.score,
            )
            passage = passages[span.passage_index]
            start, end = passage.start + span.start, passage.start + span.end
            if (passage.doc_id, start, end) in seen:
                continue
            seen.add((passage.doc_id, start, end))
            citations.append(
                Citation(
                    doc_id=passage.doc_id,
                    title=passage.title,
                    source=passage.source,
                    chunk_id=passage.chunk_id,
                    start=start,
                    end=end,
                    snippet=make_snippet(passage.text, span.start, span.end),
                    score=span.score,
                )
            )
        return Answer(
            question,
            answer_text,
            score,
            citations,
            list(passages),
            {"read": read_ms},
            candidates,
            confidence=top.probability,
        )

    def ask(self, question: str, top_k: int | None = None) -> Answer:
        t0 = time.perf_counter()
        question = self.check_question(question)
        passages, timings = self.retrieve(question, top_k)
        answer = self.read(question, passages)
        answer.timings_ms = {
            **timings,
            **answer.timings_ms,
            "total": (time.perf_counter() - t0) * 1000,
        }
        return answer
