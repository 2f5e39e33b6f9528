"""`ragqa eval` end to end: the seeds gold set (with its CI floor) and SQuAD-format files."""

from __future__ import annotations

import json
from pathlib import Path

from eval.cli import evaluate

from .conftest import REPO

FLOORS = json.loads((REPO / "eval" / "floors.json").read_text())


def test_seeds_gold_set_meets_its_floor(seeds_pipeline, tmp_path: Path) -> None:
    out = tmp_path / "report"
    metrics = evaluate(
        seeds_pipeline.settings,
        gold=REPO / "eval/gold/seeds.jsonl",
        squad=None,
        mode="reader",
        out=out,
        limit=None,
        seed=13,
        progress=False,
        pipeline=seeds_pipeline,
    )
    for name in (
        "metrics.json",
        "predictions.jsonl",
        "report.md",
        "report.html",
        "f1_by_type.png",
        "calibration.png",
        "abstention.png",
        "latency.png",
    ):
        assert (out / name).is_file(), name
    required = {
        "n",
        "em",
        "f1",
        "has_ans_em",
        "has_ans_f1",
        "no_ans_accuracy",
        "recall_at_1",
        "recall_at_3",
        "recall_at_5",
        "recall_at_10",
        "mrr",
        "citation_accuracy",
        "latency_ms_p50",
        "latency_ms_p95",
    }
    assert required <= set(json.loads((out / "metrics.json").read_text()))
    floor = FLOORS["seeds"]
    assert metrics["em"] >= floor["em"], metrics
    assert metrics["f1"] >= floor["f1"], metrics
    assert metrics["recall_at_5"] >= floor["recall_at_5"], metrics
    predictions = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == metrics["n"]


def _mini_squad(path: Path) -> Path:
    data = {
        "version": "v2.0",
        "data": [
            {
                "title": "Leeds_Museum",
                "paragraphs": [
                    {
                        "context": (
                            "The museum in Leeds opened in 1998. "
                            "Its founder, Maria Ellis, raised money."
                        ),
                        "qas": [
                            {
                                "id": "a1",
                                "question": "Who founded the museum in Leeds?",
                                "answers": [{"text": "Maria Ellis", "answer_start": 50}],
                                "is_impossible": False,
                            },
                            {
                                "id": "a2",
                                "question": "What colour is the museum roof?",
                                "answers": [],
                                "is_impossible": True,
                            },
                        ],
                    },
                    {
                        "context": "The river Aire flows through Leeds to the Ouse.",
                        "qas": [
                            {
                                "id": "b1",
                                "question": "Which river flows through Leeds?",
                                "answers": [{"text": "Aire", "answer_start": 10}],
                            }
                        ],
                    },
                ],
            }
        ],
    }
    path.write_text(json.dumps(data), "utf-8")
    return path


def test_squad_reader_and_open_modes(seeds_pipeline, tmp_path: Path) -> None:
    squad = _mini_squad(tmp_path / "mini.json")
    for mode in ("reader", "open"):
        out = tmp_path / mode
        metrics = evaluate(
            seeds_pipeline.settings,
            gold=None,
            squad=squad,
            mode=mode,
            out=out,
            limit=None,
            seed=1,
            progress=False,
            pipeline=seeds_pipeline,
        )
        assert metrics["n"] == 3 and metrics["n_no_answer"] == 1
        assert (out / "report.md").read_text().startswith("# Evaluation report")
    # open mode indexed the paragraphs in its own index, not the seeds index
    assert (tmp_path / "open" / "open-index" / "CURRENT").is_file()
    assert len(seeds_pipeline.snapshot.documents) == 2
