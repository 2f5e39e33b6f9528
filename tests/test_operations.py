"""Operations: request ids, JSON logs, /live, /ready, Prometheus metrics, graceful shutdown."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.observability import JsonFormatter, request_id_var
from qa.ingest import Ingestor
from qa.pipeline import QAPipeline
from qa.settings import Settings
from qa.types import Passage, ReaderOutput

from .conftest import REPO, SEEDS, FakeEmbedder


class _NoReader:
    name = "no-reader"

    def read(self, question: str, passages: Sequence[Passage], top_n: int = 5) -> ReaderOutput:
        return ReaderOutput([])


def _settings(tmp_path: Path) -> Settings:
    return Settings(index_dir=tmp_path / "index", embedding_model="fake-embedder", chunk_tokens=60)


def test_request_id_is_echoed_or_made(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    Ingestor(settings, FakeEmbedder()).ingest([SEEDS], progress=False)
    app = create_app(settings, QAPipeline(settings, FakeEmbedder(), _NoReader()))  # type: ignore[arg-type]
    with TestClient(app) as client:
        r = client.get("/health", headers={"X-Request-ID": "abc-123"})
        assert r.headers["x-request-id"] == "abc-123"
        made = client.get("/health").headers["x-request-id"]
        assert len(made) == 32 and made != client.get("/health").headers["x-request-id"]
        evil = client.get("/health", headers={"X-Request-ID": 'a\tb"c' + "x" * 100})
        assert evil.headers["x-request-id"] != 'a\tb"c' + "x" * 100
        assert client.post("/ask", content=b"{").headers["x-request-id"]  # errors carry one too


def test_json_log_lines_carry_the_request_id() -> None:
    record = logging.makeLogRecord(
        {
            "name": "ragqa.access",
            "levelno": 20,
            "levelname": "INFO",
            "msg": "GET %s",
            "args": ("/x",),
        }
    )
    record.status = 200
    token = request_id_var.set("rid-1")
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id_var.reset(token)
    assert line["request_id"] == "rid-1" and line["message"] == "GET /x"
    assert line["status"] == 200 and line["level"] == "info" and line["logger"] == "ragqa.access"


def test_ready_and_live(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    app = create_app(settings, QAPipeline(settings, FakeEmbedder(), _NoReader()))  # type: ignore[arg-type]
    with TestClient(app) as client:
        assert client.get("/live").json() == {"status": "alive"}
        r = client.get("/ready")
        assert r.status_code == 503 and r.json()["index"] is False
        assert "ragqa ingest" in r.json()["detail"]
        Ingestor(settings, FakeEmbedder()).ingest([SEEDS], progress=False)
        r = client.get("/ready")  # the index appeared; the models were loaded at start-up
        assert r.status_code == 200 and r.json()["status"] == "ready" and r.json()["snapshot"]


def test_metrics(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    Ingestor(settings, FakeEmbedder()).ingest([SEEDS], progress=False)
    app = create_app(settings, QAPipeline(settings, FakeEmbedder(), _NoReader()))  # type: ignore[arg-type]
    with TestClient(app, raise_server_exceptions=False) as client:
        for _ in range(3):
            client.post("/ask", json={"question": "Who closed the conference?"})
        client.post("/ask", json={"question": ""})
        client.get("/documents/nope")
        text = client.get("/metrics").text
    lines = dict(
        line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    assert float(lines['ragqa_http_requests_total{method="POST",route="/ask",status="200"}']) == 3
    assert float(lines['ragqa_http_requests_total{method="POST",route="/ask",status="422"}']) == 1
    key = 'ragqa_http_requests_total{method="GET",route="/documents/{doc_id}",status="404"}'
    assert float(lines[key]) == 1
    assert float(lines['ragqa_http_request_duration_seconds_count{route="/ask"}']) == 4
    assert float(lines["ragqa_index_documents"]) == 2 and float(lines["ragqa_index_chunks"]) > 2
    assert float(lines["ragqa_index_bytes"]) > 1000 and float(lines["ragqa_ready"]) == 1
    assert "ragqa_http_errors_total" in text and 'route="/nope' not in text


# ------------------------------------------------------------------- graceful shutdown
_SERVER = r"""
import sys, time
from pathlib import Path
from api.app import create_app
from api.server import serve
from qa.pipeline import QAPipeline
from qa.settings import Settings
from qa.types import ReaderOutput
from tests.conftest import FakeEmbedder

class SlowReader:
    name = "slow"
    def read(self, question, passages, top_n=5):
        time.sleep(2.0)  # an in-flight request when SIGTERM arrives
        return ReaderOutput([])

settings = Settings(index_dir=Path(sys.argv[1]), embedding_model="fake-embedder",
                    chunk_tokens=60, port=int(sys.argv[2]), reader="heuristic")
pipeline = QAPipeline(settings, embedder=FakeEmbedder(), reader=SlowReader())
serve(settings, create_app(settings, pipeline=pipeline))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sigterm_finishes_in_flight_requests(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    Ingestor(settings, FakeEmbedder()).ingest([SEEDS], progress=False)
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(settings.index_dir), str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[0]
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not get ready"
            time.sleep(0.2)
        result: dict[str, object] = {}

        def ask() -> None:
            r = httpx.post(f"{base}/ask", json={"question": "Who closed it?"}, timeout=30)
            result["status"], result["body"] = r.status_code, r.json()

        thread = threading.Thread(target=ask)
        thread.start()
        time.sleep(0.7)  # the request is in the slow reader now
        proc.send_signal(signal.SIGTERM)
        thread.join(timeout=30)
        assert result.get("status") == 200, result
        assert "passages" in result["body"]  # type: ignore[operator]
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode in (0, -signal.SIGTERM), out  # uvicorn re-raises the signal
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert any(line["message"].startswith("POST /ask 200") for line in lines), out
    assert any("in-flight requests have finished" in line["message"] for line in lines), out
    access = next(line for line in lines if line["message"].startswith("POST /ask"))
    assert len(access["request_id"]) == 32 and access["route"] == "/ask"
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{base}/live", timeout=2)


def test_short_soak_has_no_failures(seeds_pipeline, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The CI version of bench/soak.py: 8 clients for 5 s against a real `ragqa serve`."""
    out = tmp_path / "soak.json"
    cmd = [sys.executable, str(REPO / "bench" / "soak.py"), "--clients", "8", "--duration", "5"]
    cmd += ["--index-dir", str(seeds_pipeline.settings.index_dir), "--json", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert figures["requests_failed"] == 0 and figures["requests_ok"] > 0
    assert figures["rss_growth_mb"] <= figures["rss_bound_mb"]


class _BlockingReader:
    """A reader that, once armed, holds the inference thread until released."""

    name = "blocking-reader"

    def __init__(self) -> None:
        self.armed = False
        self.entered = threading.Event()
        self.release = threading.Event()

    def read(self, question: str, passages: Sequence[Passage], top_n: int = 5) -> ReaderOutput:
        if self.armed:
            self.entered.set()
            self.release.wait(timeout=30)
        return ReaderOutput([])


def test_health_and_documents_do_not_queue_behind_questions(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    Ingestor(settings, FakeEmbedder()).ingest([SEEDS], progress=False)
    reader = _BlockingReader()
    app = create_app(settings, QAPipeline(settings, FakeEmbedder(), reader))  # type: ignore[arg-type]
    with TestClient(app) as client:
        reader.armed = True
        asking = threading.Thread(target=lambda: client.post("/ask", json={"question": "Who?"}))
        asking.start()
        try:
            assert reader.entered.wait(timeout=30), "the question never reached the reader"
            # the inference thread is busy: these must still answer, before it is released
            assert client.get("/health").status_code == 200
            assert client.get("/ready").status_code == 200
            assert client.get("/documents").json()["total"] == 2
            assert not reader.release.is_set() and asking.is_alive()
        finally:
            reader.release.set()
            asking.join(timeout=30)
