"""Run the real pipeline over gold questions and score every prediction.

Three ways, all through :class:`qa.pipeline.QAPipeline` (the code the API runs):

- ``run_index``: questions against the current index (retrieve, then read),
- ``run_reader``: SQuAD reader mode, each question read against its own paragraph,
- ``run_open``: SQuAD open mode, every paragraph of the file indexed as a document in a
  separate index, then retrieve and read.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from eval.gold import GoldQuestion, SquadParagraph
from eval.metrics import percentile, question_type, score_prediction
from qa.ingest import Ingestor
from qa.loaders import make_document
from qa.normalize import normalize_answer
from qa.pipeline import QAPipeline
from qa.types import Answer, Passage

RECALL_KS = (1, 3, 5, 10)


@dataclass(slots=True)
class Prediction:
    qid: str
    question: str
    qtype: str
    gold: list[str]
    prediction: str | None
    score: float
    best_candidate: str | None  # the reader's best span even when the service abstained
    best_score: float
    em: float
    f1: float
    latency_ms: float
    relevant_rank: int | None  # 1-based rank of the first relevant passage, None if none
    citation_correct: bool | None  # None when the service abstained
    citations: list[dict[str, Any]] = field(default_factory=list)
    passages: list[dict[str, Any]] = field(default_factory=list)
    # the answer's candidates in rank order, (text, score): what another threshold would answer
    candidates: list[tuple[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sample(questions: Sequence[GoldQuestion], limit: int | None, seed: int) -> list[GoldQuestion]:
    """A reproducible random subset (in the file's order), or all questions."""
    if limit is None or limit >= len(questions):
        return list(questions)
    keep = set(random.Random(seed).sample(range(len(questions)), limit))
    return [q for i, q in enumerate(questions) if i in keep]


def _is_relevant(passage: Passage, gold: GoldQuestion) -> bool:
    """The gold article when it is known, else a passage that contains a gold answer."""
    if gold.doc_id is not None:
        return passage.doc_id == gold.doc_id
    if gold.source is not None:
        return Path(passage.source).name == Path(gold.source).name or passage.source == gold.source
    text = normalize_answer(passage.text)
    return any(normalize_answer(a) and normalize_answer(a) in text for a in gold.answers)


def _cited_passage_is_relevant(answer: Answer, gold: GoldQuestion) -> bool | None:
    if answer.answer is None:
        return None
    if not gold.answerable:
        return False
    first = answer.citations[0]
    passage = next(p for p in answer.passages if p.chunk_id == first.chunk_id)
    if gold.doc_id is not None or gold.source is not None:
        return _is_relevant(passage, gold)
    text = normalize_answer(passage.text)
    return any(normalize_answer(a) in text for a in gold.answers)


def _prediction(
    gold: GoldQuestion, answer: Answer, ranked: Sequence[Passage], ms: float
) -> Prediction:
    em, f1 = score_prediction(answer.answer, gold.answers)
    best_text, best_score = answer.candidates[0] if answer.candidates else (None, 0.0)
    rank = next((i for i, p in enumerate(ranked, start=1) if _is_relevant(p, gold)), None)
    return Prediction(
        qid=gold.qid,
        question=gold.question,
        qtype=question_type(gold.question),
        gold=list(gold.answers),
        prediction=answer.answer,
        score=answer.score,
        best_candidate=best_text,
        best_score=best_score,
        em=em,
        f1=f1,
        latency_ms=ms,
        relevant_rank=rank if gold.answerable else None,
        citation_correct=_cited_passage_is_relevant(answer, gold),
        citations=answer.to_dict()["citations"],
        passages=[
            {"doc_id": p.doc_id, "title": p.title, "chunk_id": p.chunk_id, "score": p.score}
            for p in ranked
        ],
        candidates=list(answer.candidates),
    )


def run_index(
    pipeline: QAPipeline, questions: Sequence[GoldQuestion], top_k: int, progress: bool = True
) -> list[Prediction]:
    """Retrieve (10 passages, for recall@10) and read the best ``top_k``, as /ask does."""
    predictions = []
    depth = max(top_k, max(RECALL_KS))
    for gold in tqdm(questions, desc="Evaluating", unit="q", disable=not progress):
        t0 = time.perf_counter()
        question = pipeline.check_question(gold.question)
        ranked, _ = pipeline.retrieve(question, depth)
        answer = pipeline.read(question, ranked[:top_k])
        ms = (time.perf_counter() - t0) * 1000
        predictions.append(_prediction(gold, answer, ranked, ms))
    return predictions


def run_reader(
    pipeline: QAPipeline, questions: Sequence[GoldQuestion], progress: bool = True
) -> list[Prediction]:
    """Reading only: each question gets its own paragraph as the one passage."""
    predictions = []
    for gold in tqdm(questions, desc="Reading", unit="q", disable=not progress):
        if gold.context is None:
            raise ValueError(f"question {gold.qid} has no paragraph for reader mode")
        passage = Passage(
            f"{gold.doc_id}:0",
            gold.doc_id or gold.qid,
            gold.title or "",
            "squad",
            0,
            len(gold.context),
            gold.context,
            1.0,
        )
        t0 = time.perf_counter()
        answer = pipeline.read(pipeline.check_question(gold.question), [passage])
        ms = (time.perf_counter() - t0) * 1000
        predictions.append(_prediction(gold, answer, [passage], ms))
    return predictions


def build_open_index(
    pipeline: QAPipeline, paragraphs: Sequence[SquadParagraph], progress: bool
) -> None:
    """Index every paragraph as a document (incremental: an existing index is reused)."""
    docs = (
        make_document(title=p.title, text=p.text, source=f"squad:{p.doc_id}", given_id=p.doc_id)
        for p in paragraphs
    )
    Ingestor(pipeline.settings, pipeline.embedder).ingest_documents(docs, progress=progress)


def compute_metrics(predictions: Sequence[Prediction]) -> dict[str, Any]:
    n = len(predictions)
    has_ans = [p for p in predictions if p.gold]
    no_ans = [p for p in predictions if not p.gold]
    answered = [p for p in predictions if p.prediction is not None]

    def pct(values: Sequence[float]) -> float:
        return 100.0 * sum(values) / len(values) if values else 0.0

    ranked = [p for p in has_ans if p.passages]
    metrics: dict[str, Any] = {
        "n": n,
        "n_has_answer": len(has_ans),
        "n_no_answer": len(no_ans),
        "em": pct([p.em for p in predictions]),
        "f1": pct([p.f1 for p in predictions]),
        "has_ans_em": pct([p.em for p in has_ans]),
        "has_ans_f1": pct([p.f1 for p in has_ans]),
        "no_ans_accuracy": pct([float(p.prediction is None) for p in no_ans]),
        "answered_share": pct([float(p.prediction is not None) for p in predictions]),
    }
    for k in RECALL_KS:
        metrics[f"recall_at_{k}"] = pct(
            [float(p.relevant_rank is not None and p.relevant_rank <= k) for p in ranked]
        )
    metrics["mrr"] = (
        sum(1.0 / p.relevant_rank for p in ranked if p.relevant_rank) / len(ranked)
        if ranked
        else 0.0
    )
    metrics["citation_accuracy"] = pct([float(bool(p.citation_correct)) for p in answered])
    latencies = [p.latency_ms for p in predictions]
    metrics["latency_ms_p50"] = percentile(latencies, 50)
    metrics["latency_ms_p95"] = percentile(latencies, 95)
    return metrics


def at_threshold(predictions: Sequence[Prediction], threshold: float) -> list[Prediction]:
    """The predictions the service would make with another no-answer threshold."""
    out = []
    for p in predictions:
        if p.candidates:  # the first candidate in rank order that reaches it, as the pipeline
            text = next((t for t, score in p.candidates if score >= threshold), None)
        else:  # predictions saved without their candidates
            reaches = p.best_candidate is not None and p.best_score >= threshold
            text = p.best_candidate if reaches else None
        em, f1 = score_prediction(text, p.gold)
        out.append(
            Prediction(
                **{
                    **p.to_dict(),
                    "prediction": text,
                    "em": em,
                    "f1": f1,
                    "citation_correct": p.citation_correct if text is not None else None,
                }
            )
        )
    return out


def threshold_sweep(
    predictions: Sequence[Prediction], thresholds: Sequence[float] | None = None
) -> list[dict[str, float]]:
    """F1 (overall, has-answer, no-answer accuracy) for each candidate threshold."""
    grid = thresholds if thresholds is not None else [i / 100 for i in range(0, 101)]
    rows = []
    for t in grid:
        m = compute_metrics(at_threshold(predictions, t))
        rows.append(
            {
                "threshold": t,
                "f1": m["f1"],
                "em": m["em"],
                "has_ans_f1": m["has_ans_f1"],
                "no_ans_accuracy": m["no_ans_accuracy"],
            }
        )
    return rows


def best_threshold(sweep: Sequence[dict[str, float]]) -> float:
    """The threshold of highest F1; among ties, the middle one (a more stable choice)."""
    top = max(r["f1"] for r in sweep)
    tied = [r["threshold"] for r in sweep if r["f1"] >= top - 1e-9]
    return tied[len(tied) // 2]
