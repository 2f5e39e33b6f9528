"""Helpers shared by the bench scripts: BBC questions, percentiles, results files, machine load,
a `ragqa serve` subprocess on a free loopback port."""

from __future__ import annotations

import json
import os
import platform
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[1]
BBC = REPO.parent / "shared" / "data" / "bbc"
RESULTS = REPO / "bench" / "results"
HANDWRITTEN = REPO / "qa" / "reader_data" / "handwritten"

if str(REPO) not in sys.path:  # run as `python bench/x.py` from anywhere
    sys.path.insert(0, str(REPO))


@dataclass(frozen=True, slots=True)
class BBCQuestion:
    question: str
    article: str  # e.g. "tech/001.txt", relative to the BBC folder
    answers: tuple[str, ...]


def bbc_questions(
    limit: int | None = None, seed: int = 0, articles: set[str] | None = None
) -> list[BBCQuestion]:
    """Answerable hand-written BBC questions (the article holding the answer is the gold)."""
    out: list[BBCQuestion] = []
    for path in sorted(HANDWRITTEN.glob("*.jsonl")):
        for line in path.read_text("utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            if not row["answers"] or (articles is not None and row["article"] not in articles):
                continue
            answers = tuple(a["text"] for a in row["answers"])
            out.append(BBCQuestion(row["question"], row["article"], answers))
    random.Random(seed).shuffle(out)
    return out[:limit] if limit else out


def bbc_files(limit: int | None = None) -> list[Path]:
    files = sorted(BBC.rglob("*.txt"))
    if limit:  # spread over the categories rather than the first folder only
        step = max(1, len(files) // limit)
        files = files[::step][:limit]
    return files


def article_of(source: str) -> str:
    """'.../bbc/tech/001.txt' -> 'tech/001.txt'."""
    parts = Path(source).parts
    return "/".join(parts[-2:])


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def int8_instructions() -> str:
    """Whether the CPU has VNNI, which decides how ONNX Runtime computes int8 products."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "int8 instructions unknown"
    vnni = sorted(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})
    if vnni:
        return "with " + "/".join(vnni)
    return (
        "no VNNI ("
        + ("AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "x86")
        + ")"
    )


def machine_line(threads: int | None = None) -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    cores = os.cpu_count()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    extra = f", {threads} threads" if threads else ""
    return (
        f"{when}; {platform.processor() or platform.machine()} {int8_instructions()}, "
        f"{cores} cores{extra}; "
        f"load average {load} (1, 5, 15 min) at the end"
    )


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(v: object) -> str:
        if isinstance(v, float):
            return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.1f}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_result(name: str, title: str, body: str, out_dir: Path = RESULTS) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.md"
    path.write_text(f"# {title}\n\n{body}\n", "utf-8")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(
    command: Sequence[str], env: Mapping[str, str], timeout: float = 300
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``command`` (a ``ragqa serve`` line) on a free port; yields (base URL, process) once
    ``/ready`` answers 200, and stops the server afterwards. The server's output goes to a file:
    a pipe nobody reads fills up and then blocks the server mid-request."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with (
        tempfile.TemporaryDirectory(prefix="ragqa-serve-") as tmp,
        open(Path(tmp) / "server.log", "w+b") as log,
    ):
        server = subprocess.Popen(
            [*command, "--port", str(port)], env=dict(env), stdout=log, stderr=subprocess.STDOUT
        )
        try:
            _wait_ready(base, server, log, timeout)
            yield base, server
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _wait_ready(base: str, server: subprocess.Popen[bytes], log: IO[bytes], timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            log.seek(0)
            tail = log.read().decode("utf-8", "replace")[-3000:]
            raise SystemExit(f"ragqa serve exited with {server.returncode} at start-up:\n{tail}")
        try:
            if httpx.get(base + "/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"ragqa serve was not ready after {timeout:.0f} s")
