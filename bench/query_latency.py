"""Latency of POST /ask over HTTP against `ragqa serve` on loopback, at concurrency 1, 4 and 16.

    python bench/query_latency.py --index-dir /tmp/bbcidx/onnx-int8 --backend onnx-int8
    python bench/query_latency.py --quick            # builds a 30-article index, a smoke run

Starts ``ragqa serve`` as a subprocess (models loaded once at start-up), asks hand-written BBC
questions with httpx at each concurrency and reports p50/p95/p99, throughput and errors, with
the server's own split (embed, retrieve, read from ``timings_ms``). While the highest
concurrency runs, ``GET /health`` is polled to show the event loop is not blocked by inference.
Writes ``bench/results/query_latency.md`` and ``query_latency.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    REPO,
    RESULTS,
    article_of,
    bbc_files,
    bbc_questions,
    machine_line,
    markdown_table,
    percentile,
    running_server,
    write_result,
)


def build_index(index_dir: Path, limit: int, backend: str) -> None:
    env = {**os.environ, "RAGQA_EMBEDDING_BACKEND": backend}
    files = [str(p) for p in bbc_files(limit)]
    cmd = [str(REPO / ".venv/bin/ragqa"), "ingest", "--rebuild", "--quiet", "--index-dir"]
    subprocess.run([*cmd, str(index_dir), *files], check=True, env=env)


async def run_level(
    client: object, questions: list[str], concurrency: int, total: int
) -> dict[str, object]:
    import httpx

    assert isinstance(client, httpx.AsyncClient)
    sem = asyncio.Semaphore(concurrency)
    lat: list[float] = []
    parts: dict[str, list[float]] = {"embed": [], "retrieve": [], "read": []}
    errors = 0

    async def one(i: int) -> None:
        nonlocal errors
        async with sem:
            t0 = time.perf_counter()
            try:
                r = await client.post("/ask", json={"question": questions[i % len(questions)]})
            except httpx.HTTPError:
                errors += 1
                return
            lat.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                errors += 1
                return
            timings = r.json().get("timings_ms", {})
            for key in parts:
                parts[key].append(float(timings.get(key, 0.0)))

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(total)))
    wall = time.perf_counter() - t0
    return {
        "concurrency": concurrency,
        "requests": total,
        "errors": errors,
        "p50": percentile(lat, 50),
        "p95": percentile(lat, 95),
        "p99": percentile(lat, 99),
        "rps": total / wall,
        **{f"{k}_p50": percentile(v, 50) for k, v in parts.items()},
    }


async def poll_health(client: object, stop: asyncio.Event, out: list[float]) -> None:
    import httpx

    assert isinstance(client, httpx.AsyncClient)
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            r = await client.get("/health", timeout=10)
            ok = r.status_code == 200
        except httpx.HTTPError:
            ok = False
        # a failed or timed-out poll is recorded as infinitely slow
        out.append((time.perf_counter() - t0) * 1000 if ok else float("inf"))
        await asyncio.sleep(0.05)


async def measure(base: str, questions: list[str], levels: list[int], per_level: int) -> tuple:
    import httpx

    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        for q in questions[:5]:  # warm-up
            await client.post("/ask", json={"question": q})
        rows = []
        health: list[float] = []
        for c in levels:
            stop = asyncio.Event()
            last = c == levels[-1]
            poller = asyncio.create_task(poll_health(client, stop, health)) if last else None
            rows.append(await run_level(client, questions, c, max(per_level, 4 * c)))
            stop.set()
            if poller:
                await poller
            print(rows[-1], file=sys.stderr, flush=True)
        return rows, health


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", type=Path, default=None, help="an existing index")
    parser.add_argument("--articles", type=int, default=None, help="build: BBC articles")
    parser.add_argument("--backend", default="onnx-int8", help="RAGQA_EMBEDDING_BACKEND")
    parser.add_argument("--levels", default="1,4,16")
    parser.add_argument("--requests", type=int, default=100, help="requests per level")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="30 articles, 12 requests")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.articles, args.requests = args.articles or 30, 12
    with tempfile.TemporaryDirectory() as tmp:
        index_dir = args.index_dir or Path(tmp) / "index"
        if args.index_dir is None:
            build_index(index_dir, args.articles or 0, args.backend)
        from qa.store import IndexStore

        snapshot = IndexStore(index_dir).load()
        articles = {article_of(d.source) for d in snapshot.documents.values()}
        n_docs, n_chunks = len(snapshot.documents), len(snapshot.chunks)
        del snapshot
        questions = [q.question for q in bbc_questions(500, articles=articles)]
        env = {
            **os.environ,
            "RAGQA_EMBEDDING_BACKEND": args.backend,
            "RAGQA_DEVICE": args.device,
            "OMP_NUM_THREADS": str(args.threads),
            "RAGQA_LOG_FORMAT": "text",
        }
        cmd = [str(REPO / ".venv/bin/ragqa"), "serve", "--index-dir", str(index_dir)]
        with running_server(cmd, env) as (base, _):
            levels = [int(x) for x in args.levels.split(",")]
            rows, health = asyncio.run(measure(base, questions, levels, args.requests))
    name = "query_latency_quick" if args.quick else f"query_latency_{args.device}"
    plot(rows, args.out / f"{name}.png")
    table = markdown_table(
        [
            "concurrency",
            "requests",
            "errors",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "req/s",
            "embed p50 ms",
            "retrieve p50 ms",
            "read p50 ms",
        ],
        [
            [
                r["concurrency"],
                r["requests"],
                r["errors"],
                r["p50"],
                r["p95"],
                r["p99"],
                r["rps"],
                r["embed_p50"],
                r["retrieve_p50"],
                r["read_p50"],
            ]
            for r in rows
        ],
    )
    body = "\n".join(
        [
            f"Index: {n_docs} BBC articles, {n_chunks} chunks; embedding backend {args.backend}; "
            "default reader and settings otherwise. Latency is client-side (HTTP round trip); "
            "the split is the server's `timings_ms` (median).",
            "",
            table,
            "",
            f"`GET /health` during the concurrency-{levels[-1]} run: {len(health)} polls, "
            f"{sum(h == float('inf') for h in health)} failed or over 10 s; "
            f"p50 {percentile(health, 50):.1f} ms, p95 {percentile(health, 95):.1f} ms, "
            f"max {max(health, default=float('nan')):.1f} ms.",
            "",
            f"Command: `python bench/query_latency.py {' '.join(sys.argv[1:])}`  ",
            f"Machine: {machine_line(args.threads)}",
            "",
            f"![latency against concurrency]({name}.png)",
        ]
    )
    path = write_result(name, "Query latency over HTTP", body, args.out)
    print(path.read_text("utf-8"))


def plot(rows: list[dict[str, object]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    xs = [str(r["concurrency"]) for r in rows]
    for key in ("p50", "p95", "p99"):
        ax.plot(xs, [r[key] for r in rows], marker="o", label=key)
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("POST /ask latency, ms")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
