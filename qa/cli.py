"""The ``ragqa`` command: ingest, ask, serve, stats (and eval, from the eval package)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from qa.settings import Settings
from qa.store import IndexLoadError
from qa.train_config import DEFAULT_TRAIN_CONFIG, TrainConfig

app = typer.Typer(
    help="Extractive question answering over article collections, with exact cited answers.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err = Console(stderr=True)

IndexDir = Annotated[
    Path | None, typer.Option("--index-dir", help="Index directory [env: RAGQA_INDEX_DIR].")
]
EmbeddingModel = Annotated[
    str | None,
    typer.Option("--embedding-model", help="Embedding model [env: RAGQA_EMBEDDING_MODEL]."),
]
ReaderOpt = Annotated[
    str | None, typer.Option("--reader", help="heuristic or transformers [env: RAGQA_READER].")
]
ReaderModel = Annotated[
    str | None,
    typer.Option("--reader-model", help="QA checkpoint, hub id or path [env: RAGQA_READER_MODEL]."),
]
TopK = Annotated[int | None, typer.Option("--top-k", help="Passages to read [env: RAGQA_TOP_K].")]
Threshold = Annotated[
    float | None,
    typer.Option("--threshold", help="No-answer threshold [env: RAGQA_NO_ANSWER_THRESHOLD]."),
]
Device = Annotated[str | None, typer.Option("--device", help="cpu or cuda [env: RAGQA_DEVICE].")]


def make_settings(**overrides: Any) -> Settings:
    """Environment variables, then the flags that were given."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValueError as exc:
        err.print(f"[red]error:[/red] invalid setting: {exc}")
        raise typer.Exit(2) from None


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


@app.command()
def ingest(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Article files or folders (recursive).")
    ] = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Start a new index.")] = False,
    if_missing: Annotated[
        bool, typer.Option("--if-missing", help="Do nothing when an index already exists.")
    ] = False,
    index_dir: IndexDir = None,
    embedding_model: EmbeddingModel = None,
    chunk_tokens: Annotated[int | None, typer.Option("--chunk-tokens")] = None,
    device: Device = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Add articles (.txt, .md, .html, .json, .jsonl) to the index."""
    from embeddings import Embedder
    from qa.ingest import Ingestor
    from qa.store import IndexStore

    settings = make_settings(
        index_dir=index_dir,
        embedding_model=embedding_model,
        chunk_tokens=chunk_tokens,
        device=device,
    )
    if if_missing and IndexStore(settings.index_dir).exists():
        console.print(f"index already present at {settings.index_dir}; nothing to do")
        return
    if not paths and not rebuild:
        raise fail("give at least one file or folder to ingest", 2)
    embedder = Embedder.from_settings(settings)
    try:
        report = Ingestor(settings, embedder).ingest(
            paths or [], rebuild=rebuild, progress=not quiet
        )
    except IndexLoadError as exc:
        raise fail(str(exc)) from None
    for error in report.errors:
        err.print(f"[yellow]skipped[/yellow] {error.path}: {error.reason}")
    console.print(
        f"{report.files} files: {len(report.added)} new, {len(report.replaced)} replaced, "
        f"{report.unchanged} unchanged, {len(report.errors)} skipped; "
        f"{report.chunks_embedded} chunks embedded. Index: {report.n_documents} documents, "
        f"{report.n_chunks} chunks at {settings.index_dir}"
        + ("" if report.written else " (unchanged)")
    )


def _load_pipeline(settings: Settings):  # type: ignore[no-untyped-def]
    from qa.pipeline import QAPipeline

    pipeline = QAPipeline(settings)
    try:
        _ = pipeline.snapshot
    except IndexLoadError as exc:
        raise fail(str(exc)) from None
    return pipeline


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON.")] = False,
    index_dir: IndexDir = None,
    top_k: TopK = None,
    reader: ReaderOpt = None,
    reader_model: ReaderModel = None,
    threshold: Threshold = None,
    embedding_model: EmbeddingModel = None,
    device: Device = None,
) -> None:
    """Answer a question from the indexed articles, with its sources."""
    from qa.pipeline import QuestionError

    settings = make_settings(
        index_dir=index_dir,
        top_k=top_k,
        reader=reader,
        reader_model=reader_model,
        no_answer_threshold=threshold,
        embedding_model=embedding_model,
        device=device,
    )
    pipeline = _load_pipeline(settings)
    try:
        answer = pipeline.ask(question)
    except QuestionError as exc:
        raise fail(str(exc), 2) from None
    if as_json:
        sys.stdout.write(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2) + "\n")
        return
    if answer.answer is None:
        console.print(
            f"[bold]No answer found in the articles[/bold] (best score {answer.score:.2f})"
        )
    else:
        console.print(f"[bold green]{answer.answer}[/bold green]  (score {answer.score:.2f})")
        for i, c in enumerate(answer.citations, start=1):
            console.print(f"  [{i}] {c.title} — {c.source} [{c.start}:{c.end}]")
            console.print(f"      {c.snippet}", highlight=False)
    console.print("Passages:", style="dim")
    for p in answer.passages:
        console.print(f"  {p.score:.4f}  {p.title} ({p.chunk_id})", style="dim")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option("--host", help="[env: RAGQA_HOST]")] = None,
    port: Annotated[int | None, typer.Option("--port", help="[env: RAGQA_PORT]")] = None,
    index_dir: IndexDir = None,
    reader: ReaderOpt = None,
    reader_model: ReaderModel = None,
    threshold: Threshold = None,
    device: Device = None,
) -> None:
    """Run the HTTP API and the web page (JSON logs, graceful shutdown; README Operations)."""
    from api.server import serve as run_server

    settings = make_settings(
        host=host,
        port=port,
        index_dir=index_dir,
        reader=reader,
        reader_model=reader_model,
        no_answer_threshold=threshold,
        device=device,
    )
    run_server(settings)


@app.command("hash-key")
def hash_key_command(
    role: Annotated[str, typer.Option("--role", help="ask or admin.")] = "ask",
    key: Annotated[
        str | None, typer.Option("--key", help="Hash this key instead of making a new one.")
    ] = None,
) -> None:
    """Make an API key and print the entry to put in RAGQA_API_KEYS (the key is not stored)."""
    from api.security import ROLES, hash_key, new_key

    if role not in ROLES:
        raise fail(f"--role must be one of {', '.join(ROLES)}", 2)
    secret = key or new_key()
    if key is None:
        console.print(f"key (give it to the client; it is not shown again): {secret}")
    sys.stdout.write(f"{role}:{hash_key(secret)}\n")


@app.command()
def stats(
    index_dir: IndexDir = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show what is indexed."""
    from qa.store import IndexStore

    settings = make_settings(index_dir=index_dir)
    store = IndexStore(settings.index_dir)
    try:
        snapshot = store.load()
    except IndexLoadError as exc:
        raise fail(str(exc)) from None
    m = snapshot.manifest
    info = {
        "index_dir": str(settings.index_dir),
        "snapshot": snapshot.name,
        "documents": m.n_documents,
        "chunks": m.n_chunks,
        "embedding_model": m.embedding_model,
        "embedding_backend": m.embedding_backend or "not recorded",
        "dimension": m.dimension,
        "index_kind": m.index_kind,
        "chunk_tokens": m.chunk_tokens,
    }
    if as_json:
        sys.stdout.write(json.dumps(info, indent=2) + "\n")
        return
    table = Table(title="ragqa index")
    table.add_column("setting")
    table.add_column("value")
    for k, v in info.items():
        table.add_row(k, str(v))
    console.print(table)
    docs = Table(title="documents")
    for col in ("doc_id", "title", "chunks", "source"):
        docs.add_column(col)
    counts: dict[str, int] = {}
    for c in snapshot.chunks:
        counts[c.doc_id] = counts.get(c.doc_id, 0) + 1
    for doc in list(snapshot.documents.values())[:50]:
        docs.add_row(doc.doc_id, doc.title[:60], str(counts.get(doc.doc_id, 0)), doc.source)
    console.print(docs)
    if len(snapshot.documents) > 50:
        console.print(f"... and {len(snapshot.documents) - 50} more")


@app.command("train-reader")
def train_reader(
    out: Annotated[
        Path | None, typer.Option("--out", help="Checkpoint folder (default: qa/reader_model).")
    ] = None,
    bbc_dir: Annotated[
        Path | None, typer.Option("--bbc-dir", help="BBC corpus (default: ../shared/data/bbc).")
    ] = None,
    base_model: Annotated[
        str,
        typer.Option(
            "--base-model",
            help="Starting point: the packaged MiniLM encoder (default), or a QA checkpoint "
            "(folder or hub id) to go on training, such as qa/reader_model.",
        ),
    ] = DEFAULT_TRAIN_CONFIG.base_model,
    epochs: Annotated[float, typer.Option("--epochs")] = DEFAULT_TRAIN_CONFIG.epochs,
    learning_rate: Annotated[
        float, typer.Option("--learning-rate")
    ] = DEFAULT_TRAIN_CONFIG.learning_rate,
    batch_size: Annotated[int, typer.Option("--batch-size")] = DEFAULT_TRAIN_CONFIG.batch_size,
    max_seq_len: Annotated[int, typer.Option("--max-seq-len")] = DEFAULT_TRAIN_CONFIG.max_seq_len,
    seed: Annotated[int, typer.Option("--seed")] = DEFAULT_TRAIN_CONFIG.seed,
    device: Annotated[
        str, typer.Option("--device", help="auto, cpu or cuda.")
    ] = DEFAULT_TRAIN_CONFIG.device,
    balance_years: Annotated[
        bool,
        typer.Option(
            "--balance-years/--no-balance-years",
            help="Drop unanswerable year questions until a year in a question no longer "
            "predicts 'no answer' (default), or train on all of them.",
        ),
    ] = DEFAULT_TRAIN_CONFIG.balance_years,
) -> None:
    """Fine-tune an extractive QA reader on our own data (from the packaged MiniLM encoder)."""
    from qa.reader_data import DEFAULT_BBC_DIR, TrainingDataError
    from qa.train_reader import DEFAULT_OUTPUT, train

    cfg = TrainConfig(
        base_model=base_model,
        epochs=epochs,
        learning_rate=learning_rate,
        batch_size=batch_size,
        max_seq_len=max_seq_len,
        seed=seed,
        device=device,
        balance_years=balance_years,
    )
    try:
        figures = train(out or DEFAULT_OUTPUT, cfg, bbc_dir or DEFAULT_BBC_DIR)
    except TrainingDataError as exc:
        raise fail(str(exc), 2) from None
    console.print_json(json.dumps(figures))


def _register_subcommands() -> None:
    from eval.cli import register

    register(app)


_register_subcommands()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
