"""``ragqa eval``: evaluate the pipeline on a gold JSONL set or an official SQuAD file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.table import Table

from eval.gold import GoldFormatError, load_gold_jsonl, load_squad
from eval.report import METRIC_ROWS, write_report
from eval.runner import (
    build_open_index,
    compute_metrics,
    run_index,
    run_reader,
    sample,
    threshold_sweep,
)
from qa.pipeline import QAPipeline
from qa.settings import Settings
from qa.store import IndexLoadError

console = Console()

Mode = Literal["reader", "open"]


def evaluate(
    settings: Settings,
    *,
    gold: Path | None,
    squad: Path | None,
    mode: Mode,
    out: Path,
    limit: int | None,
    seed: int,
    progress: bool = True,
    pipeline: QAPipeline | None = None,
) -> dict[str, Any]:
    """Run one evaluation and write its report folder; returns the metrics.

    ``pipeline`` reuses loaded models (gold and reader modes); by default one is built from
    ``settings``.
    """
    if (gold is None) == (squad is None):
        raise ValueError("give exactly one of --gold FILE.jsonl or --squad FILE.json")
    config: dict[str, Any] = {
        "dataset": str(gold or squad),
        "mode": "index" if gold else mode,
        "reader": settings.reader,
        "reader_model": settings.reader_model,
        "embedding_model": settings.embedding_model,
        "retrieval_mode": settings.retrieval_mode,
        "top_k": settings.top_k,
        "no_answer_threshold": settings.answer_threshold,
        "limit": limit,
        "seed": seed,
    }
    if gold is not None:
        questions = sample(load_gold_jsonl(gold), limit, seed)
        pipeline = pipeline or QAPipeline(settings)
        config["index_dir"] = str(settings.index_dir)
        predictions = run_index(pipeline, questions, settings.top_k, progress)
    else:
        assert squad is not None
        paragraphs = load_squad(squad)
        questions = sample([q for p in paragraphs for q in p.questions], limit, seed)
        if mode == "reader":
            predictions = run_reader(pipeline or QAPipeline(settings), questions, progress)
        else:
            open_dir = out / "open-index"
            open_settings = settings.model_copy(update={"index_dir": open_dir})
            embedder = pipeline.embedder if pipeline else None
            reader = pipeline.reader if pipeline else None
            pipeline = QAPipeline(open_settings, embedder=embedder, reader=reader)
            build_open_index(pipeline, paragraphs, progress)
            config["index_dir"] = str(open_dir)
            config["documents"] = len(paragraphs)
            predictions = run_index(pipeline, questions, settings.top_k, progress)
    metrics = compute_metrics(predictions)
    sweep = threshold_sweep(predictions)
    write_report(out, predictions, metrics, sweep, config)
    return metrics


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_command(
        out: Annotated[Path, typer.Option("--out", help="Report folder to write.")],
        gold: Annotated[
            Path | None, typer.Option("--gold", help="Gold JSONL: id, question, answers[, doc_id].")
        ] = None,
        squad: Annotated[
            Path | None, typer.Option("--squad", help="Official SQuAD v1.1/v2.0 JSON file.")
        ] = None,
        mode: Annotated[str, typer.Option("--mode", help="SQuAD: reader or open.")] = "reader",
        limit: Annotated[
            int | None, typer.Option("--limit", help="Evaluate a random sample of N questions.")
        ] = None,
        seed: Annotated[int, typer.Option("--seed", help="Seed of the --limit sample.")] = 13,
        index_dir: Annotated[Path | None, typer.Option("--index-dir")] = None,
        top_k: Annotated[int | None, typer.Option("--top-k")] = None,
        reader: Annotated[str | None, typer.Option("--reader")] = None,
        reader_model: Annotated[str | None, typer.Option("--reader-model")] = None,
        threshold: Annotated[float | None, typer.Option("--threshold")] = None,
        retrieval_mode: Annotated[str | None, typer.Option("--retrieval-mode")] = None,
        embedding_model: Annotated[str | None, typer.Option("--embedding-model")] = None,
        device: Annotated[str | None, typer.Option("--device")] = None,
        quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
    ) -> None:
        """Evaluate answers against a gold set; writes metrics.json, report.md/.html, plots."""
        from qa.cli import fail, make_settings

        if mode not in ("reader", "open"):
            raise fail("--mode must be reader or open", 2)
        settings = make_settings(
            index_dir=index_dir,
            top_k=top_k,
            reader=reader,
            reader_model=reader_model,
            no_answer_threshold=threshold,
            retrieval_mode=retrieval_mode,
            embedding_model=embedding_model,
            device=device,
        )
        try:
            metrics = evaluate(
                settings,
                gold=gold,
                squad=squad,
                mode=mode,
                out=out,  # type: ignore[arg-type]
                limit=limit,
                seed=seed,
                progress=not quiet,
            )
        except (GoldFormatError, ValueError, IndexLoadError, OSError) as exc:
            raise fail(str(exc), 2) from None
        table = Table(title=f"Evaluation: {gold or squad}")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for key, label, fmt in METRIC_ROWS:
            if key in metrics:
                table.add_row(label, fmt.format(metrics[key]))
        console.print(table)
        console.print(f"report: {out / 'report.md'}  ({out / 'report.html'})")
