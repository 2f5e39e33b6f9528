"""Choose a reader's no-answer threshold on a calibration split of the seeds gold set.

    python -m eval.calibrate [--reader transformers|heuristic]
        [--reader-backend torch|onnx|onnx-int8] [--reader-span-score probability|null_odds]
        [--gold eval/gold/seeds.jsonl]

It indexes ``seeds/`` in a temporary folder, answers every gold question with the real pipeline
(threshold 0, so every candidate is kept), then sweeps the threshold on the even-numbered
questions (the calibration split) and reports the F1 it gives on the odd-numbered ones (the
check split). The chosen value goes into ``CALIBRATED_THRESHOLDS`` in ``qa/settings.py`` by hand,
with the figures in the README.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import get_args

from rich.console import Console
from rich.table import Table

from eval.gold import load_gold_jsonl
from eval.runner import best_threshold, compute_metrics, run_index, threshold_sweep
from qa.ingest import Ingestor
from qa.pipeline import QAPipeline
from qa.settings import Backend, Settings, SpanScore

REPO = Path(__file__).resolve().parents[1]


def calibrate(settings: Settings, gold: Path, seeds: Path) -> dict[str, float]:
    """The chosen threshold with calibration- and check-split F1 at it."""
    questions = load_gold_jsonl(gold)
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings.model_copy(
            update={"index_dir": Path(tmp) / "index", "no_answer_threshold": 0.0}
        )
        pipeline = QAPipeline(settings)
        Ingestor(settings, pipeline.embedder).ingest([seeds], progress=False)
        predictions = run_index(pipeline, questions, settings.top_k, progress=True)
    calib, check = predictions[0::2], predictions[1::2]
    chosen = best_threshold(threshold_sweep(calib))
    (at_chosen,) = threshold_sweep(check, [chosen])
    return {
        "threshold": chosen,
        "calibration_f1": threshold_sweep(calib, [chosen])[0]["f1"],
        "check_f1": at_chosen["f1"],
        "check_has_ans_f1": at_chosen["has_ans_f1"],
        "check_no_ans_accuracy": at_chosen["no_ans_accuracy"],
        "all_f1_at_zero": compute_metrics(predictions)["f1"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Calibrate the no-answer threshold.")
    parser.add_argument("--reader", choices=["transformers", "heuristic"], default=None)
    parser.add_argument("--reader-model", default=None)
    parser.add_argument("--reader-backend", choices=get_args(Backend), default=None)
    parser.add_argument("--reader-span-score", choices=get_args(SpanScore), default=None)
    parser.add_argument("--gold", type=Path, default=REPO / "eval/gold/seeds.jsonl")
    parser.add_argument("--seeds", type=Path, default=REPO / "seeds")
    args = parser.parse_args()
    overrides = {
        "reader": args.reader,
        "reader_model": args.reader_model,
        "reader_backend": args.reader_backend,
        "reader_span_score": args.reader_span_score,
    }
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    result = calibrate(settings, args.gold, args.seeds)
    table = Table(title=f"No-answer threshold for {settings.threshold_key}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in result.items():
        table.add_row(key, f"{value:.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
