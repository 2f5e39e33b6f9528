"""Index integrity: SIGKILLed ingestions, corrupt, truncated, mismatched and foreign indexes.

The kill test runs the real ingestion code (``Ingestor.ingest``: read, chunk, embed, write the
snapshot, publish, prune) in a child process and SIGKILLs it after a seeded random delay, many
times. After every kill the last published index must load and answer, and rerunning the same
ingestion must complete it without duplicates. The embedder is the fast fake one so that a round
takes about a second (the kill points are what matters, not the model). ``RAGQA_KILL_ROUNDS``
raises the number of rounds (the figure in the README was measured that way).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from qa.cli import app as cli_app
from qa.ingest import Ingestor
from qa.loaders import load_file
from qa.pipeline import QAPipeline
from qa.settings import Settings
from qa.store import IndexLoadError, IndexStore
from qa.types import Document, Passage, ReaderOutput

from .conftest import REPO, SEEDS, SHARED, FakeEmbedder

BBC = SHARED / "data" / "bbc"
ROUNDS = int(os.environ.get("RAGQA_KILL_ROUNDS", "25"))
BATCH = 4
FIRST = 20
# a round takes about a second; a child still running after this long is stuck, not slow
CHILD_DEADLINE_S = 120

# A process that imports the ingestion code once, then forks one child per ingestion: the child
# is the ingesting process the test kills (so a round does not pay for Python's start-up).
_ZYGOTE = r"""
import faulthandler, os, sys
CHILD_DEADLINE_S = int(os.environ["RAGQA_KILL_CHILD_DEADLINE_S"])
from pathlib import Path
import threading, tqdm
# tqdm's default lock holds a multiprocessing semaphore, which forked children share: a child
# SIGKILLed inside tqdm (bm25s makes bars even when they are hidden) would leave it taken and
# every later child would wait on it forever. Each child gets a process-local lock instead, and
# no monitor thread (a fork while it held the lock would deadlock the child the same way).
tqdm.tqdm.monitor_interval = 0
tqdm.tqdm.set_lock(threading.RLock())
from tests.conftest import FakeEmbedder
from qa.ingest import Ingestor
from qa.settings import Settings
import tempfile  # warm up once (lazy imports, sentence splitter) so each child starts hot
with tempfile.TemporaryDirectory() as tmp:
    (Path(tmp) / "a.txt").write_text("Warm up\n\nA first sentence. A second one.", "utf-8")
    s = Settings(index_dir=Path(tmp) / "i", embedding_model="fake-embedder", chunk_tokens=60)
    Ingestor(s, FakeEmbedder()).ingest([Path(tmp) / "a.txt"], progress=False)
print("ready", flush=True)
for line in sys.stdin:
    index_dir, corpus = line.rstrip("\n").split("\t")
    pid = os.fork()
    if pid == 0:
        # a child that hangs (a deadlock inherited through fork) prints every thread's stack and
        # exits, so the test fails with the place instead of waiting forever
        faulthandler.dump_traceback_later(CHILD_DEADLINE_S, exit=True)
        try:
            s = Settings(index_dir=Path(index_dir), embedding_model="fake-embedder",
                         chunk_tokens=60)
            Ingestor(s, FakeEmbedder()).ingest([Path(corpus)], progress=False)
            code = 0
        except BaseException as exc:
            print("child error:", repr(exc), file=sys.stderr, flush=True)
            code = 1
        os._exit(code)
    print(pid, flush=True)
    _, status = os.waitpid(pid, 0)
    print("exit", status, flush=True)
"""


class _FirstSentence:
    """A reader that 'answers' with the first word of the best passage: enough to prove the
    index answers (retrieval works, offsets are cited) without loading a model."""

    name = "first-word"

    def read(self, question: str, passages: Sequence[Passage], top_n: int = 5) -> ReaderOutput:
        from qa.types import Span

        if not passages:
            return ReaderOutput([])
        text = passages[0].text
        end = len(text.split(" ", 1)[0])
        return ReaderOutput([Span(0, 0, end, text[:end], 1.0)])


class Zygote:
    def __init__(self) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "RAGQA_KILL_CHILD_DEADLINE_S": str(CHILD_DEADLINE_S),
            # One thread everywhere: forking a process whose OpenMP (libgomp) or tokenizer thread
            # pools have started can deadlock the child, and this test forks a hundred times.
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _ZYGOTE],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        # stdout is read by a thread so that every wait has a deadline: a hung zygote fails the
        # test with a message instead of hanging the suite
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        assert self._line() == "ready"

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put("")

    def _line(self) -> str:
        try:
            line = self._lines.get(timeout=CHILD_DEADLINE_S + 30)
        except queue.Empty:
            self.proc.kill()
            raise AssertionError(
                f"the ingestion zygote said nothing for {CHILD_DEADLINE_S + 30} s"
            ) from None
        assert line, "the ingestion zygote died"
        return line.strip()

    def start(self, index_dir: Path, corpus: Path) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{index_dir}\t{corpus}\n")
        self.proc.stdin.flush()
        return int(self._line())

    def wait(self) -> int:
        """The child's raw wait status (0 = finished cleanly, SIGKILL = killed)."""
        word, status = self._line().split()
        assert word == "exit"
        return int(status)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


@pytest.fixture
def zygote() -> Iterator[Zygote]:
    z = Zygote()
    yield z
    z.close()


def _check_index(settings: Settings, expected_docs: set[int]) -> int:
    """The live index loads, has no duplicates, is self-consistent and answers a question."""
    snap = IndexStore(settings.index_dir).load()
    n = len(snap.documents)
    assert n in expected_docs, (n, expected_docs)
    chunk_ids = [c.chunk_id for c in snap.chunks]
    assert len(chunk_ids) == len(set(chunk_ids)), "duplicate chunks"
    sources = [d.source for d in snap.documents.values()]
    assert len(sources) == len(set(sources)), "duplicate documents"
    assert {c.doc_id for c in snap.chunks} == set(snap.documents)
    pipeline = QAPipeline(settings, embedder=FakeEmbedder(), reader=_FirstSentence())  # type: ignore[arg-type]
    answer = pipeline.ask("What did the company report about profits?")
    assert answer.answer and answer.citations and answer.passages
    cite = answer.citations[0]
    assert snap.documents[cite.doc_id].text[cite.start : cite.end] == answer.answer
    return n


def _distinct(paths: list[Path], n: int) -> list[Path]:
    """The first ``n`` files with distinct documents (BBC holds a few duplicate articles)."""
    seen: set[str] = set()
    out: list[Path] = []
    for path in paths:
        doc = next(iter(load_file(path)))
        if isinstance(doc, Document) and doc.doc_id not in seen:
            seen.add(doc.doc_id)
            out.append(path)
            if len(out) == n:
                break
    return out


@pytest.mark.skipif(not BBC.is_dir(), reason="needs ../shared/data/bbc")
def test_sigkilled_ingestion_never_breaks_the_index(tmp_path: Path, zygote: Zygote) -> None:
    files = _distinct(sorted(BBC.glob("*/*.txt")), FIRST + BATCH * ROUNDS)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for f in files[:FIRST]:
        shutil.copy(f, corpus / f"{f.parent.name}-{f.name}")  # 001.txt is in every category
    settings = Settings(
        index_dir=tmp_path / "index", embedding_model="fake-embedder", chunk_tokens=60
    )
    Ingestor(settings, FakeEmbedder()).ingest([corpus], progress=False)
    docs = _check_index(settings, {FIRST})

    rng = random.Random(7)
    kills = finished_first = 0
    duration = 1.0  # refined by each completed run
    for round_no in range(ROUNDS):
        for f in files[FIRST + round_no * BATCH : FIRST + (round_no + 1) * BATCH]:
            shutil.copy(f, corpus / f"{f.parent.name}-{f.name}")  # 001.txt is in every category
        # a seeded random point in the run: anywhere from the first file read to the publish
        delay = rng.uniform(0.0, duration * 1.05)
        pid = zygote.start(settings.index_dir, corpus)
        time.sleep(delay)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        status = zygote.wait()
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
            kills += 1
        else:
            assert status == 0, f"ingestion failed on its own (status {status})"
            finished_first += 1
        # the last good index is live: either the old one or the completed new one
        _check_index(settings, {docs, docs + BATCH})
        # rerunning the same ingestion completes it, without duplicates, and the lock is free
        t0 = time.perf_counter()
        zygote.start(settings.index_dir, corpus)
        assert zygote.wait() == 0
        duration = time.perf_counter() - t0
        docs = _check_index(settings, {docs + BATCH})
    print(f"\n{kills} SIGKILLs, {finished_first} runs finished before their kill, {ROUNDS} rounds")
    assert kills >= ROUNDS // 2
    snapshots = [p for p in IndexStore(settings.index_dir).snapshots_dir.iterdir()]
    assert len([p for p in snapshots if not p.name.startswith(".")]) <= 3


# --------------------------------------------------------------- damaged indexes at start-up
class _NoReader:
    name = "no-reader"

    def read(self, question: str, passages: Sequence[Passage], top_n: int = 5) -> ReaderOutput:
        return ReaderOutput([])


class _SmallEmbedder(FakeEmbedder):
    """Same model name as the index, other dimension: a swapped local model folder."""

    dimension = 32


def _build(tmp_path: Path) -> Settings:
    settings = Settings(
        index_dir=tmp_path / "index", embedding_model="fake-embedder", chunk_tokens=60
    )
    Ingestor(settings, FakeEmbedder()).ingest([SEEDS], progress=False)
    return settings


def _snapshot_dir(settings: Settings) -> Path:
    store = IndexStore(settings.index_dir)
    return store.snapshots_dir / store.current_name()


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _set_version(path: Path) -> None:
    manifest = json.loads(path.read_text())
    manifest["format_version"] = 99
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("damage", "file", "fragment"),
    [
        (_truncate, "vectors.faiss", "vectors.faiss is corrupt"),
        (_flip, "embeddings.npy", "embeddings.npy is corrupt"),
        (_truncate, "documents.jsonl", "documents.jsonl is corrupt"),
        (_flip, "bm25/params.index.json", "corrupt"),
        (lambda p: p.unlink(), "chunks.jsonl", "chunks.jsonl is missing"),
        (_truncate, "manifest.json", "manifest.json is corrupt"),
        (_set_version, "manifest.json", "incompatible version"),
    ],
)
def test_damaged_index_is_reported_at_startup(tmp_path, damage, file, fragment) -> None:  # type: ignore[no-untyped-def]
    settings = _build(tmp_path)
    target = _snapshot_dir(settings) / file
    if not target.exists():  # bm25s file names differ between versions: damage one that exists
        target = sorted((_snapshot_dir(settings) / "bm25").iterdir())[0]
    damage(target)
    pipeline = QAPipeline(settings, embedder=FakeEmbedder(), reader=_NoReader())  # type: ignore[arg-type]
    with TestClient(create_app(settings, pipeline=pipeline)) as client:
        for url in ("/health", "/ready"):
            r = client.get(url)
            assert r.status_code == 503
            detail = r.json()["detail"]
            assert fragment in detail and "--rebuild" in detail, detail
            assert str(settings.index_dir) in detail and "Traceback" not in detail
        r = client.post("/ask", json={"question": "Who closed the conference?"})
        assert r.status_code == 503 and fragment in r.json()["detail"]
        assert client.get("/live").status_code == 200
    result = CliRunner().invoke(cli_app, ["stats", "--index-dir", str(settings.index_dir)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "--rebuild" in result.output


def test_embedding_model_and_dimension_mismatch_at_startup(tmp_path: Path) -> None:
    settings = _build(tmp_path)
    pipeline = QAPipeline(settings, embedder=_SmallEmbedder(), reader=_NoReader())  # type: ignore[arg-type]
    with TestClient(create_app(settings, pipeline=pipeline)) as client:
        r = client.get("/ready")
        assert r.status_code == 503
        detail = r.json()["detail"]
        assert "dimension 64" in detail and "dimension 32" in detail and "manifest.json" in detail
        assert client.post("/ask", json={"question": "Who?"}).status_code == 503
    other = settings.model_copy(update={"embedding_model": "another-model"})
    pipeline = QAPipeline(other, embedder=FakeEmbedder(), reader=_NoReader())  # type: ignore[arg-type]
    with TestClient(create_app(other, pipeline=pipeline)) as client:
        detail = client.get("/health").json()["detail"]
        assert "built with embedding model 'fake-embedder'" in detail
        assert "RAGQA_EMBEDDING_MODEL" in detail
    with pytest.raises(IndexLoadError, match="dimension 32"):
        Ingestor(settings, _SmallEmbedder()).ingest([SEEDS], progress=False)


def test_reader_racing_two_publishes_gets_a_whole_index(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A reader that read CURRENT just before two ingestions published (and pruned its
    snapshot) loads the newest one instead of failing."""
    settings = _build(tmp_path)
    store = IndexStore(settings.index_dir)
    stale = store.current_name()
    extra = tmp_path / "extra"
    for i in range(2):
        extra.mkdir(exist_ok=True)
        (extra / f"n{i}.txt").write_text(f"Title {i}\n\nBody number {i} of the news.", "utf-8")
        Ingestor(settings, FakeEmbedder()).ingest([extra], progress=False)
    assert not (store.snapshots_dir / stale).exists()
    names = iter([stale])
    real = store.current_name
    monkeypatch.setattr(store, "current_name", lambda: next(names, None) or real())
    snap = store.load()
    assert snap.name == real() and len(snap.documents) == 4
