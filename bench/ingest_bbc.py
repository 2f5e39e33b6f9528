"""Ingestion speed of the BBC corpus per stage and embedding backend, and its cost in recall.

    python bench/ingest_bbc.py                      # all 2225 articles, torch vs onnx vs onnx-int8
    python bench/ingest_bbc.py --quick              # 40 articles, a smoke run
    python bench/ingest_bbc.py --device cuda --backends torch   # where a GPU is present
    python bench/ingest_bbc.py --limit 600 --repeat 3  # each backend 3 times, median run

Each backend runs in its own process (so peak memory is its own) on ``--threads`` threads:
articles are parsed and chunked, embedded, and indexed (FAISS + BM25, snapshot written) into a
temporary index; articles/s and chunks/s are reported per stage. Retrieval recall@5 (is the
article a hand-written question was written about among the top 5 passages?) is measured on
that index, dense and hybrid, so the speed of a backend is shown beside what it costs.
Writes ``bench/results/ingest_bbc.md`` and ``ingest_bbc.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import get_args

from _common import (
    RESULTS,
    article_of,
    bbc_files,
    bbc_questions,
    machine_line,
    markdown_table,
    peak_rss_mb,
    write_result,
)

from qa.settings import Backend

BACKENDS = get_args(Backend)


def run_one(args: argparse.Namespace) -> dict[str, object]:
    import numpy as np
    import torch

    from embeddings import Embedder
    from qa.ingest import Ingestor
    from qa.retrieve import HybridRetriever
    from qa.settings import Settings
    from qa.store import IndexStore

    torch.set_num_threads(args.threads)
    files = bbc_files(args.limit)
    with tempfile.TemporaryDirectory() as tmp:
        index_dir = Path(tmp) / "index"
        if args.keep_index:
            index_dir = args.keep_index / str(args.child)
        settings = Settings(
            index_dir=index_dir,
            embedding_backend=args.child,
            device=args.device,
            embedding_batch_size=args.batch_size,
        )
        t0 = time.perf_counter()
        embedder = Embedder(
            settings.embedding_model,
            settings.device,
            settings.embedding_batch_size,
            backend=settings.embedding_backend,
            cache_dir=settings.embedding_cache_dir,
            threads=args.threads,
        )
        embedder.encode(["load the model (and export it on first use)"])
        load_s = time.perf_counter() - t0
        report = Ingestor(settings, embedder).ingest(files, rebuild=True, progress=not args.quiet)
        snapshot = IndexStore(settings.index_dir).load()

        articles = {article_of(d.source) for d in snapshot.documents.values()}
        questions = bbc_questions(args.questions, articles=articles)
        t1 = time.perf_counter()
        vectors = embedder.encode([q.question for q in questions])
        query_ms = (time.perf_counter() - t1) * 1000 / max(1, len(questions))
        recall: dict[str, float] = {}
        for mode in ("dense", "hybrid"):
            retriever = HybridRetriever(snapshot, settings.candidate_k, settings.rrf_k, mode)
            hits = 0
            for q, v in zip(questions, vectors, strict=True):
                found = retriever.retrieve(q.question, np.asarray(v), 5)
                hits += any(article_of(p.source) == q.article for p in found)
            recall[mode] = hits / max(1, len(questions))
    s = report.seconds
    return {
        "backend": args.child,
        "articles": report.n_documents,
        "chunks": report.n_chunks,
        "load_s": load_s,
        "parse_chunk_s": s.get("read", 0.0) + s.get("chunk", 0.0),
        "embed_s": s.get("embed", 0.0),
        "index_s": s.get("index", 0.0),
        "peak_rss_mb": peak_rss_mb(),
        "questions": len(questions),
        "query_embed_ms": query_ms,
        "recall5_dense": recall["dense"],
        "recall5_hybrid": recall["hybrid"],
    }


def _total(row: dict[str, float]) -> float:
    return row["parse_chunk_s"] + row["embed_s"] + row["index_s"]


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run with the median total time (the lower middle one for an even count)."""
    return sorted(runs, key=_total)[(len(runs) - 1) // 2]


def repeats_note(runs: dict[str, list[dict[str, float]]]) -> str:
    parts = [
        f"{backend} " + ", ".join(f"{_total(r):.1f} s (load {r['load']:.1f})" for r in rows)
        for backend, rows in runs.items()
    ]
    return (
        f"Each backend ran {len(next(iter(runs.values())))} times, in alternating order; the "
        "table shows each backend's run with the median total time. Total seconds per run (and "
        "1-minute load average after it): " + "; ".join(parts) + "."
    )


def plot(rows: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    names = [str(r["backend"]) for r in rows]
    left = [0.0] * len(rows)
    stages = (("parse_chunk_s", "parse+chunk"), ("embed_s", "embed"), ("index_s", "index"))
    for key, label in stages:
        values = [float(r[key]) for r in rows]
        ax.barh(names, values, left=left, label=label)
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.set_xlabel("seconds")
    r0 = rows[0]
    ax.set_title(f"Ingesting {int(r0['articles'])} BBC articles ({int(r0['chunks'])} chunks)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(rows: list[dict[str, float]], args: argparse.Namespace) -> str:
    base = next((r for r in rows if r["backend"] == "torch"), None)
    stage_rows = []
    for r in rows:
        total = r["parse_chunk_s"] + r["embed_s"] + r["index_s"]
        stage_rows.append(
            [
                r["backend"],
                r["articles"] / r["parse_chunk_s"],
                r["chunks"] / r["embed_s"],
                r["chunks"] / r["index_s"],
                r["articles"] / total,
                r["chunks"] / total,
                f"{(base['parse_chunk_s'] + base['embed_s'] + base['index_s']) / total:.2f}x"
                if base
                else "n/a (no torch run)",
                f"{base['embed_s'] / r['embed_s']:.2f}x" if base else "n/a",
                f"{r['peak_rss_mb']:.0f}",
                f"{100 * r['recall5_dense']:.1f}",
                f"{100 * r['recall5_hybrid']:.1f}",
            ]
        )
    header = [
        "backend",
        "parse+chunk articles/s",
        "embed chunks/s",
        "index chunks/s",
        "total articles/s",
        "total chunks/s",
        "total speed-up vs torch",
        "embed speed-up",
        "peak RSS MB",
        "recall@5 dense",
        "recall@5 hybrid",
    ]
    r0 = rows[0]
    lines = [
        f"{int(r0['articles'])} articles, {int(r0['chunks'])} chunks, device {args.device}, "
        f"batch size {args.batch_size}; recall@5 over {int(r0['questions'])} hand-written "
        "questions (gold: the article each was written about).",
        "",
        markdown_table(header, stage_rows),
        "",
        "Model load (and one-off ONNX export on a cold cache), seconds: "
        + ", ".join(f"{r['backend']} {r['load_s']:.1f}" for r in rows)
        + ". Query embedding, ms per question: "
        + ", ".join(f"{r['backend']} {r['query_embed_ms']:.1f}" for r in rows)
        + ".",
        "",
        f"Command: `python bench/ingest_bbc.py {' '.join(sys.argv[1:])}`  ",
        f"Machine: {machine_line(args.threads)}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--limit", type=int, default=None, help="articles (default: all)")
    parser.add_argument("--questions", type=int, default=1000, help="recall@5 questions")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="40 articles, 50 questions")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--name", default=None, help="results file name (default by run)")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per backend, in alternating order (median)"
    )
    parser.add_argument(
        "--keep-index", type=Path, default=None, help="keep each backend's index in DIR/BACKEND"
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.limit, args.questions = args.limit or 40, min(args.questions, 50)
    if args.child:
        print("RESULT " + json.dumps(run_one(args)), flush=True)
        return
    backends = args.backends.split(",")
    for backend in backends:
        if backend not in BACKENDS:
            parser.error(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    runs: dict[str, list[dict[str, float]]] = {b: [] for b in backends}
    for rep in range(args.repeat):  # alternate the order, so a change in load hits every backend
        for backend in backends if rep % 2 == 0 else backends[::-1]:
            cmd = [sys.executable, __file__, *sys.argv[1:], "--child", backend]
            print(f"== {backend} (run {rep + 1} of {args.repeat})", file=sys.stderr, flush=True)
            done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
            line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
            runs[backend].append(json.loads(line[len("RESULT ") :]) | {"load": os.getloadavg()[0]})
    rows = [median_run(runs[b]) for b in backends]
    name = args.name or ("ingest_bbc_quick" if args.quick else f"ingest_bbc_{args.device}")
    args.out.mkdir(parents=True, exist_ok=True)
    plot(rows, args.out / f"{name}.png")
    body = report(rows, args)
    if args.repeat > 1:
        body += "\n\n" + repeats_note(runs)
    body += f"\n\n![ingestion per stage]({name}.png)"
    path = write_result(name, "Ingestion of the BBC corpus", body, args.out)
    print(path.read_text("utf-8"))


if __name__ == "__main__":
    main()
