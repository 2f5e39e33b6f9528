"""The bench scripts run end to end in their quick modes (no timing is asserted, only that they
finish and write their tables and plots), so they cannot silently rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BBC = REPO.parent / "shared" / "data" / "bbc"

pytestmark = pytest.mark.skipif(not BBC.is_dir(), reason="needs ../shared/data/bbc")


def _run(script: str, out: Path, *args: str) -> str:
    cmd = [sys.executable, str(REPO / "bench" / script), "--quick", "--out", str(out), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_ingest_bench(tmp_path: Path) -> None:
    out = _run(
        "ingest_bbc.py",
        tmp_path,
        "--backends",
        "onnx-int8",
        "--limit",
        "8",
        "--questions",
        "10",
        "--quiet",
    )
    table = (tmp_path / "ingest_bbc_quick.md").read_text()
    assert "| onnx-int8 |" in table and "recall@5 dense" in table and "load average" in table
    assert (tmp_path / "ingest_bbc_quick.png").stat().st_size > 1000
    assert "8 articles" in out


def test_index_scale_bench(tmp_path: Path) -> None:
    _run(
        "index_scale.py",
        tmp_path,
        "--sizes",
        "1000,3000",
        "--kinds",
        "flat,ivf-sq8",
        "--queries",
        "20",
        "--base-articles",
        "10",
    )
    table = (tmp_path / "index_scale_quick.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| 3,000 |")]
    assert {r.split("|")[2].strip() for r in rows} == {"flat", "ivf-sq8"}
    flat = next(r for r in rows if "| flat |" in r)
    assert flat.split("|")[7].strip() == "1.000"  # exact search finds the exact top 10
    assert (tmp_path / "index_scale_quick.png").stat().st_size > 1000


def test_query_latency_bench(tmp_path: Path) -> None:
    _run("query_latency.py", tmp_path, "--articles", "10", "--requests", "4", "--levels", "1,4")
    table = (tmp_path / "query_latency_quick.md").read_text()
    rows = [
        line.split("|")
        for line in table.splitlines()
        if line.startswith("| 1 |") or line.startswith("| 4 |")
    ]
    assert len(rows) == 2 and all(r[3].strip() == "0" for r in rows)  # no errors
    assert "GET /health" in table


def test_peers_bench(tmp_path: Path) -> None:
    # the peers come with the optional `bench` extra; without it there is nothing to compare
    pytest.importorskip("haystack", reason="needs the bench extra (haystack-ai)")
    pytest.importorskip("txtai", reason="needs the bench extra (txtai)")
    _run(
        "peers.py",
        tmp_path,
        "--systems",
        "ragqa,haystack,txtai",
        "--articles",
        "6",
        "--questions",
        "3",
    )
    table = (tmp_path / "peers_quick.md").read_text()
    for system in ("ragqa", "haystack", "txtai"):
        assert f"| {system} |" in table
    assert "| ragqa / haystack |" in table and "| ragqa / txtai |" in table
    assert "failed" not in table and "load average" in table
    assert (tmp_path / "peers_quick.png").stat().st_size > 1000


def test_answer_ranking_bench(tmp_path: Path) -> None:
    out = _run("answer_ranking.py", tmp_path, "--weights", "0,2")
    table = (tmp_path / "answer_ranking_quick.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| 0.000 |")]
    rows += [line for line in table.splitlines() if line.startswith("| 2.000 |")]
    assert len(rows) == 2 and "12, all answerable" in table and "load average" in table
    assert (tmp_path / "answer_ranking_quick.png").stat().st_size > 1000
    assert "wrote" in out
