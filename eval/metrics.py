"""SQuAD's official answer metrics and the retrieval, citation and latency figures."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

from qa.normalize import normalize_answer


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    """Token-level F1 after normalisation (the official SQuAD script's definition)."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = Counter(pred_tokens) & Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def score_prediction(prediction: str | None, answers: Sequence[str]) -> tuple[float, float]:
    """(EM, F1), best over the gold answers; with no gold answer, 1 exactly when abstaining."""
    if not answers:
        return (1.0, 1.0) if prediction is None else (0.0, 0.0)
    if prediction is None:
        return 0.0, 0.0
    return max(exact_match(prediction, a) for a in answers), max(
        f1_score(prediction, a) for a in answers
    )


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else 0.0


def question_type(question: str) -> str:
    """who / when / where / how many / what / other, from the question's wording."""
    q = question.lower()
    if re.search(r"\bhow (many|much)\b", q):
        return "how many"
    for word in ("who", "whom", "whose"):
        if re.search(rf"\b{word}\b", q):
            return "who"
    if re.search(r"\bwhen\b|\bwhat (year|date|day|month|time)\b", q):
        return "when"
    if re.search(r"\bwhere\b", q):
        return "where"
    if re.search(r"\b(what|which)\b", q):
        return "what"
    return "other"
