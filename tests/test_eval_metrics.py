"""The metric code pinned against hand-computed cases (SQuAD's official definitions)."""

from __future__ import annotations

import json

import pytest

from eval.gold import GoldFormatError, load_gold_jsonl, load_squad
from eval.metrics import exact_match, f1_score, question_type, score_prediction
from eval.runner import Prediction, best_threshold, compute_metrics, sample, threshold_sweep
from qa.normalize import normalize_answer

from .conftest import REPO, SHARED


def test_normalisation() -> None:
    assert normalize_answer("The  Rao, Quan!") == "rao quan"
    assert normalize_answer("an apple a day") == "apple day"
    assert normalize_answer("Theatre") == "theatre"  # articles only as whole words
    assert normalize_answer("  \t") == ""


def test_exact_match_and_f1_hand_computed() -> None:
    assert exact_match("the Denver Broncos", "Denver Broncos") == 1.0
    assert exact_match("Broncos", "Denver Broncos") == 0.0
    # pred {denver, broncos, team} vs gold {denver, broncos}: P=2/3, R=1 -> F1=0.8
    assert f1_score("Denver Broncos team", "Denver Broncos") == pytest.approx(0.8)
    # pred {carolina}, gold {carolina, panthers}: P=1, R=1/2 -> 2/3
    assert f1_score("Carolina", "the Carolina Panthers") == pytest.approx(2 / 3)
    assert f1_score("Paris", "London") == 0.0
    # repeated tokens count by multiplicity: pred {a1 a1 b}, gold {a1 b b}: common 2 -> P=R=2/3
    assert f1_score("x x y", "x y y") == pytest.approx(2 / 3)


def test_score_prediction_best_over_answers_and_abstention() -> None:
    assert score_prediction("Rao Quan", ["Quan", "Rao Quan"]) == (1.0, 1.0)
    em, f1 = score_prediction("Director Rao Quan", ["Rao Quan", "Director"])
    assert em == 0.0 and f1 == pytest.approx(0.8)
    assert score_prediction(None, []) == (1.0, 1.0)
    assert score_prediction("something", []) == (0.0, 0.0)
    assert score_prediction(None, ["x"]) == (0.0, 0.0)


def test_question_types() -> None:
    assert question_type("Who closed it?") == "who"
    assert question_type("How many experts came?") == "how many"
    assert question_type("In what year was it founded?") == "when"
    assert question_type("Where was it held?") == "where"
    assert question_type("Which library hosted it?") == "what"
    assert question_type("Name the director.") == "other"


def _pred(gold, prediction, best, best_score, rank=1, cited=True) -> Prediction:  # type: ignore[no-untyped-def]
    em, f1 = score_prediction(prediction, gold)
    return Prediction(
        "q",
        "Who?",
        "who",
        list(gold),
        prediction,
        best_score,
        best,
        best_score,
        em,
        f1,
        10.0,
        rank if gold else None,
        (cited if prediction is not None else None),
        [],
        [{"title": "t"}],
    )


def test_compute_metrics_hand_computed() -> None:
    preds = [
        _pred(["Rao Quan"], "Rao Quan", "Rao Quan", 0.9, rank=1),
        _pred(["seven"], "eight", "eight", 0.6, rank=3, cited=False),
        _pred(["Ordos"], None, "Ordos", 0.1, rank=None),
        _pred([], None, "Paris", 0.2),
        _pred([], "Lyon", "Lyon", 0.7, cited=False),
    ]
    m = compute_metrics(preds)
    assert m["n"] == 5 and m["n_has_answer"] == 3 and m["n_no_answer"] == 2
    assert m["em"] == pytest.approx(100 * 2 / 5)  # Rao Quan + the abstention on an unanswerable
    assert m["has_ans_em"] == pytest.approx(100 / 3)
    assert m["no_ans_accuracy"] == pytest.approx(50.0)
    assert m["recall_at_1"] == pytest.approx(100 / 3)
    assert m["recall_at_3"] == pytest.approx(200 / 3)
    assert m["mrr"] == pytest.approx((1 + 1 / 3) / 3)
    assert m["citation_accuracy"] == pytest.approx(100 / 3)  # 1 of 3 answered cites right
    sweep = threshold_sweep(preds, [0.0, 0.5, 0.8, 0.95])
    by_t = {r["threshold"]: r for r in sweep}
    # at 0.0 everything is answered: Rao Quan, Ordos right -> EM 2/5;
    # at 0.8 only Rao Quan + 1 abstention
    assert by_t[0.0]["em"] == pytest.approx(40.0)
    assert by_t[0.8]["em"] == pytest.approx(60.0)
    assert best_threshold(sweep) == 0.8


def test_sample_is_reproducible() -> None:
    items = list(range(100))
    assert sample(items, 10, seed=1) == sample(items, 10, seed=1)  # type: ignore[arg-type]
    assert sample(items, 10, seed=1) != sample(items, 10, seed=2)  # type: ignore[arg-type]
    assert sample(items, None, seed=1) == items  # type: ignore[arg-type]


def test_gold_loader_and_errors(tmp_path) -> None:
    path = tmp_path / "g.jsonl"
    path.write_text(
        '{"id": "a", "question": "Q?", "answers": ["x"], "doc_id": "d", "extra": 1}\n'
        '{"id": "b", "question": "R?", "answers": []}\n',
        "utf-8",
    )
    qs = load_gold_jsonl(path)
    assert [q.answerable for q in qs] == [True, False] and qs[0].doc_id == "d"
    path.write_text('{"id": "a", "question": "Q?", "answers": "x"}\n', "utf-8")
    with pytest.raises(GoldFormatError, match=r"g\.jsonl:1"):
        load_gold_jsonl(path)


def test_seeds_gold_set_is_valid() -> None:
    """Every answer of the hand-written seeds gold set is a span of its cleaned article."""
    from qa.loaders import load_file

    docs = {p.name: next(iter(load_file(p))) for p in (REPO / "seeds").glob("*.txt")}
    rows = [json.loads(line) for line in (REPO / "eval/gold/seeds.jsonl").read_text().splitlines()]
    assert len(rows) >= 60
    assert sum(1 for r in rows if not r["answers"]) >= 12
    assert len({r["id"] for r in rows}) == len(rows)
    for r in rows:
        for answer in r["answers"]:
            assert answer in docs[r["source"]].text, (r["id"], answer)


@pytest.mark.skipif(not (SHARED / "data/squad").is_dir(), reason="../shared/data not present")
def test_squad_loader_reads_both_versions() -> None:
    v1 = load_squad(SHARED / "data/squad/squad-v1.1-dev-part-a.json")
    v2 = load_squad(SHARED / "data/squad/squad-v2.0-dev-part-a.json")
    assert len(v1) == 1023 and sum(len(p.questions) for p in v1) == 5397
    assert sum(len(p.questions) for p in v2) == 5554
    assert sum(1 for p in v2 for q in p.questions if not q.answerable) == 2701
