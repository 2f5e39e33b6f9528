"""Soak test: N concurrent clients ask questions of a real `ragqa serve` on loopback for D seconds.

Starts `ragqa serve` on a free port (with the index given, or the seeds indexed into a temporary
folder), waits for /ready, warms up, then runs the clients (httpx, asyncio) until the time is up
and stops by itself. Prints throughput, latency percentiles, failed requests and the server's
memory (RSS) growth against a bound, and exits 1 when a request failed or the bound was passed.

    python bench/soak.py                           # 50 clients, 60 s
    python bench/soak.py --clients 8 --duration 5  # the short version the test suite runs
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
from _common import REPO, percentile, running_server

GOLD = REPO / "eval" / "gold" / "seeds.jsonl"


def _questions() -> list[str]:
    rows = [json.loads(line) for line in GOLD.read_text(encoding="utf-8").splitlines() if line]
    return [r["question"] for r in rows] or ["Who closed the 2019 conference?"]


async def _client(
    http: httpx.AsyncClient, questions: list[str], stop: float, seed: int, out: dict
) -> None:
    rng = random.Random(seed)
    while time.monotonic() < stop:
        t0 = time.perf_counter()
        try:
            r = await http.post("/ask", json={"question": rng.choice(questions)})
            ok = r.status_code == 200 and "answer" in r.json()
            if not ok:
                out["errors"].append(f"HTTP {r.status_code}: {r.text[:120]}")
        except (httpx.HTTPError, ValueError) as exc:
            ok = False
            out["errors"].append(f"{type(exc).__name__}: {exc}")
        (out["latencies"] if ok else out["failed"]).append(time.perf_counter() - t0)


async def _run(base: str, clients: int, duration: float, server: psutil.Process) -> dict:
    questions = _questions()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as http:
        for q in questions[:3]:  # warm up: first calls load lazily-built pieces
            (await http.post("/ask", json={"question": q})).raise_for_status()
        rss_start = server.memory_info().rss
        out: dict = {"latencies": [], "failed": [], "errors": []}
        rss_peak = rss_start

        async def sample_rss() -> None:
            nonlocal rss_peak
            while time.monotonic() < stop:
                rss_peak = max(rss_peak, server.memory_info().rss)
                await asyncio.sleep(0.5)

        t0 = time.monotonic()
        stop = t0 + duration
        await asyncio.gather(
            sample_rss(), *(_client(http, questions, stop, i, out) for i in range(clients))
        )
        elapsed = time.monotonic() - t0
        rss_end = server.memory_info().rss
    return {**out, "elapsed": elapsed, "rss": (rss_start, rss_peak, rss_end)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    ap.add_argument("--index-dir", type=Path, help="index to serve (default: seeds, indexed now)")
    ap.add_argument("--rss-bound-mb", type=float, default=100.0, help="allowed RSS growth")
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    args = ap.parse_args()

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    ragqa = str(Path(sys.executable).parent / "ragqa")
    tmp = tempfile.TemporaryDirectory(prefix="ragqa-soak-")
    index_dir = args.index_dir
    if index_dir is None:
        index_dir = Path(tmp.name) / "index"
        subprocess.run(
            [ragqa, "ingest", "--quiet", "--index-dir", str(index_dir), str(REPO / "seeds")],
            check=True,
            env=env,
        )
    try:
        command = [ragqa, "serve", "--index-dir", str(index_dir)]
        with running_server(command, env, timeout=180) as (base, server):
            watched = psutil.Process(server.pid)
            result = asyncio.run(_run(base, args.clients, args.duration, watched))
    finally:
        tmp.cleanup()

    lat = [x * 1000 for x in result["latencies"]]
    done, failed = len(lat), len(result["failed"])
    rss_start, rss_peak, rss_end = (x / 2**20 for x in result["rss"])
    growth = rss_end - rss_start
    figures = {
        "clients": args.clients,
        "seconds": round(result["elapsed"], 1),
        "requests_ok": done,
        "requests_failed": failed,
        "throughput_rps": round(done / result["elapsed"], 2),
        "p50_ms": round(percentile(lat, 50), 1),
        "p95_ms": round(percentile(lat, 95), 1),
        "p99_ms": round(percentile(lat, 99), 1),
        "max_ms": round(max(lat), 1) if lat else None,
        "rss_start_mb": round(rss_start, 1),
        "rss_peak_mb": round(rss_peak, 1),
        "rss_end_mb": round(rss_end, 1),
        "rss_growth_mb": round(growth, 1),
        "rss_bound_mb": args.rss_bound_mb,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    print("| figure | value |\n|---|---|")
    for k, v in figures.items():
        print(f"| {k} | {v} |")
    for e in sorted(set(result["errors"]))[:10]:
        print("error:", e)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    ok = failed == 0 and done > 0 and growth <= args.rss_bound_mb
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
