"""ragqa beside Haystack 2.x and txtai on the same BBC articles, embedding model and reader weights.

    pip install -e '.[bench]'
    python bench/peers.py --quick                        # 12 articles, 6 questions
    python bench/peers.py --articles 300 --questions 100 # 1 thread, 2 ingestion rounds

Every system gets the same chunks (ragqa's chunker over the same articles, each article's title
before its chunk's text, as ragqa indexes them), the packaged all-MiniLM-L6-v2 weights and the
shipped reader weights (``qa/reader_model``), both by local path, offline. Each system runs in
its own process on ``--threads`` threads (torch, OpenMP, BLAS; ragqa's ONNX Runtime session
too) and loads and warms every model before anything is timed. The systems ingest one at a
time (``--ingest-rounds`` times each, in rotating order; the fastest run counts), then every
question goes to each system in turn, the order rotating, so that the load of a shared machine
falls on all of them alike; CPU time is reported beside wall time for the same reason.
``--threads`` is 1 by default: on the busy 2-core development machine, two threads per process
waited on each other (one question's embedding took 40-500 ms on two threads, 10-16 ms on one).

- ragqa: ``Ingestor`` and ``QAPipeline`` with the default settings (embedding on ONNX Runtime,
  reader on ONNX Runtime with int8 weights), and ``ragqa-torch``: the same on plain
  sentence-transformers and a float32 PyTorch reader, the runtimes the peers use.
- Haystack: in-memory document store, ``SentenceTransformersDocumentEmbedder`` /
  ``TextEmbedder``, ``InMemoryBM25Retriever`` and ``InMemoryEmbeddingRetriever`` (50
  candidates each, as ragqa) fused by ``DocumentJoiner`` (reciprocal rank fusion, top 5),
  ``ExtractiveReader`` (384-token windows, stride 128, as ragqa) over the 5 passages.
- txtai: ``Embeddings`` (dense, sentence-transformers, content stored) and ``Extractor``
  searching the 5 best passages itself and reading them.

Reported per system: ingestion time (embed + index; ragqa's parse and chunk time is shown
apart, the peers are handed the chunks), query latency p50/p95 split into embed, retrieve and
read (one question at a time, in process), recall@5 (is the article a hand-written question
was written about among the 5 passages?) and peak memory; ragqa's figures as ratios to each
peer's. Writes ``bench/results/peers.md`` and ``peers.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from _common import (
    RESULTS,
    article_of,
    bbc_files,
    bbc_questions,
    machine_line,
    markdown_table,
    peak_rss_mb,
    percentile,
    write_result,
)

SYSTEMS = ("ragqa", "ragqa-torch", "haystack", "txtai")
PEERS = ("haystack", "txtai")
TOP_K = 5  # passages retrieved and handed to the reader, every system
CANDIDATES = 50  # per retriever before fusion (ragqa's candidate_k)
WARM_QUESTIONS = 3  # asked before timing starts, not counted
STAGES = ("embed", "retrieve", "read")


@dataclass(frozen=True, slots=True)
class Passage:
    chunk_id: str
    article: str  # e.g. "tech/001.txt"
    text: str  # what is embedded, indexed and read: the title, then the chunk


# ---------------------------------------------------------------------- corpus (parent)
def build_corpus(files: Sequence[Path]) -> list[Passage]:
    """ragqa's chunks of the files with its default settings; an article held by two files
    (exact duplicate) is kept once, under the first file's name, as ragqa's ingestion does."""
    from embeddings import Embedder
    from qa.chunking import Chunker, index_text
    from qa.loaders import load_file
    from qa.settings import Settings
    from qa.types import Document

    settings = Settings()
    chunker = Chunker(
        Embedder(settings.embedding_model).count_tokens,
        max_tokens=settings.chunk_tokens,
        overlap_sentences=settings.chunk_overlap_sentences,
    )
    seen: set[str] = set()
    out: list[Passage] = []
    for path in files:
        for doc in load_file(path):
            if not isinstance(doc, Document) or doc.doc_id in seen:
                continue
            seen.add(doc.doc_id)
            for c in chunker.chunk(doc):
                text = index_text(doc.title, c.text)
                out.append(Passage(c.chunk_id, article_of(doc.source), text))
    return out


# ---------------------------------------------------------------------- systems (workers)
class System:
    """One system in a worker process. The constructor loads and warms its models; ``ingest``
    builds (or rebuilds) the index and times it; ``ask`` answers one question, timed by stage;
    ``after`` measures what is not timed, once all questions are asked."""

    runtime = ""

    def ingest(self) -> dict[str, Any]:
        raise NotImplementedError

    def ask(self, question: str) -> tuple[list[str], dict[str, float]]:
        """The articles of the passages found (best first) and each stage's time in ms."""
        raise NotImplementedError

    def after(self, questions: list[dict[str, str]]) -> dict[str, Any]:
        return {}


def _reader_runtime(settings: Any) -> str:
    if settings.reader_backend == "torch":
        return "PyTorch int8" if settings.reader_quantize else "PyTorch fp32"
    return "ONNX Runtime int8" if settings.reader_backend == "onnx-int8" else "ONNX Runtime fp32"


class Ragqa(System):
    def __init__(self, data: dict[str, Any], args: argparse.Namespace, tmp: Path) -> None:
        from embeddings import Embedder
        from qa.pipeline import QAPipeline
        from qa.settings import Settings

        self.plain = args.worker == "ragqa-torch"
        overrides: dict[str, Any] = {
            "embedding_backend": "torch",
            "reader_backend": "torch",
            "reader_quantize": False,
        }
        self.settings = Settings(
            index_dir=tmp / "ragqa",
            device=args.device,
            top_k=TOP_K,
            **(overrides if self.plain else {}),
        )
        self.embedder = Embedder(
            self.settings.embedding_model,
            self.settings.device,
            self.settings.embedding_batch_size,
            backend=self.settings.embedding_backend,
            cache_dir=self.settings.embedding_cache_dir,
            threads=args.threads,  # ONNX Runtime's session; torch's is set for the process
        )
        self.pipeline = QAPipeline(self.settings, embedder=self.embedder)  # loads the reader
        self.embedder.encode(["load the model (and export it on first use)"])
        self.files = [Path(f) for f in data["files"]]
        self.threads = args.threads
        self.runtime = (
            "sentence-transformers (PyTorch); reader PyTorch fp32"
            if self.plain
            else f"ONNX Runtime ({self.settings.embedding_backend}); "
            f"reader {_reader_runtime(self.settings)}"
        )

    def ingest(self) -> dict[str, Any]:
        from qa.ingest import Ingestor

        ingestor = Ingestor(self.settings, self.embedder)
        seconds = ingestor.ingest(self.files, rebuild=True, progress=False).seconds
        return {
            "ingest_s": seconds["embed"] + seconds["index"],
            "embed_s": seconds["embed"],
            "parse_chunk_s": seconds["read"] + seconds["chunk"],
            "chunks": len(self.pipeline.snapshot.chunks),
        }

    def ask(self, question: str) -> tuple[list[str], dict[str, float]]:
        import torch

        t0 = time.perf_counter()
        passages, timings = self.pipeline.retrieve(question, TOP_K)
        # ragqa's FAISS search sets the calling thread's OpenMP thread count to 1 (one query is
        # too little work to share), and torch shares it: put the reader back on --threads
        torch.set_num_threads(self.threads)
        t1 = time.perf_counter()
        self.pipeline.read(question, passages)
        t2 = time.perf_counter()
        embed = timings["embed"]
        stages = {"embed": embed, "retrieve": (t1 - t0) * 1000 - embed, "read": (t2 - t1) * 1000}
        return [article_of(p.source) for p in passages], stages

    def after(self, questions: list[dict[str, str]]) -> dict[str, Any]:
        from qa.retrieve import HybridRetriever

        retriever = HybridRetriever(
            self.pipeline.snapshot, self.settings.candidate_k, self.settings.rrf_k, "dense"
        )
        hits = 0
        for q in questions:
            vector = self.embedder.encode_query(q["question"])
            found = retriever.retrieve(q["question"], vector, TOP_K)
            hits += q["article"] in {article_of(p.source) for p in found}
        return {"recall_dense": 100 * hits / len(questions)}


class Haystack(System):
    def __init__(self, data: dict[str, Any], args: argparse.Namespace, tmp: Path) -> None:
        import torch
        from haystack import Document
        from haystack.components.embedders import (
            SentenceTransformersDocumentEmbedder,
            SentenceTransformersTextEmbedder,
        )
        from haystack.components.readers import ExtractiveReader
        from haystack.utils import ComponentDevice

        device = ComponentDevice.from_str("cuda:0" if args.device == "cuda" else "cpu")
        common = {
            "model": data["embedding_model"],
            "device": device,
            "local_files_only": True,
            "normalize_embeddings": True,
            "progress_bar": False,  # the text embedder's default draws a bar for every question
        }
        self.doc_embedder = SentenceTransformersDocumentEmbedder(**common, batch_size=64)
        self.text_embedder = SentenceTransformersTextEmbedder(**common)
        self.reader = ExtractiveReader(
            model=data["reader_model"],
            device=device,
            max_seq_length=384,
            stride=128,
            # the shipped checkpoint is stored in float16 and transformers 5 loads the stored
            # dtype by default: float16 arithmetic on a CPU made Haystack's read about 3x
            # slower (2.2 s against 0.8 s a question, 1 thread); ragqa and txtai use float32
            model_kwargs={"dtype": torch.float32} if args.device == "cpu" else {},
        )
        for component in (self.doc_embedder, self.text_embedder, self.reader):
            component.warm_up()
        self.doc_embedder.run([Document(content="load the model")])
        self.docs = [
            Document(id=p.chunk_id, content=p.text, meta={"article": p.article})
            for p in data_passages(data)
        ]
        self.runtime = (
            f"haystack-ai {version('haystack-ai')}: sentence-transformers (PyTorch); "
            "reader PyTorch fp32"
        )

    def ingest(self) -> dict[str, Any]:
        from haystack.components.joiners import DocumentJoiner
        from haystack.components.retrievers.in_memory import (
            InMemoryBM25Retriever,
            InMemoryEmbeddingRetriever,
        )
        from haystack.document_stores.in_memory import InMemoryDocumentStore

        self.store = InMemoryDocumentStore()
        t0 = time.perf_counter()
        embedded = self.doc_embedder.run(self.docs)["documents"]
        t1 = time.perf_counter()
        self.store.write_documents(embedded)
        t2 = time.perf_counter()
        self.bm25 = InMemoryBM25Retriever(self.store, top_k=CANDIDATES)
        self.dense = InMemoryEmbeddingRetriever(self.store, top_k=CANDIDATES)
        self.joiner = DocumentJoiner(join_mode="reciprocal_rank_fusion", top_k=TOP_K)
        return {"ingest_s": t2 - t0, "embed_s": t1 - t0, "chunks": self.store.count_documents()}

    def ask(self, question: str) -> tuple[list[str], dict[str, float]]:
        t0 = time.perf_counter()
        vector = self.text_embedder.run(question)["embedding"]
        t1 = time.perf_counter()
        lists = [self.bm25.run(question)["documents"], self.dense.run(vector)["documents"]]
        found = self.joiner.run(lists)["documents"][:TOP_K]
        t2 = time.perf_counter()
        self.reader.run(query=question, documents=found)
        t3 = time.perf_counter()
        stages = {"embed": (t1 - t0) * 1000, "retrieve": (t2 - t1) * 1000, "read": (t3 - t2) * 1000}
        return [d.meta["article"] for d in found], stages

    def after(self, questions: list[dict[str, str]]) -> dict[str, Any]:
        hits = 0
        for q in questions:
            vector = self.text_embedder.run(q["question"])["embedding"]
            found = self.dense.run(vector, top_k=TOP_K)["documents"]
            hits += q["article"] in {d.meta["article"] for d in found}
        return {"recall_dense": 100 * hits / len(questions)}


class Txtai(System):
    def __init__(self, data: dict[str, Any], args: argparse.Namespace, tmp: Path) -> None:
        import torch
        from txtai import Embeddings
        from txtai.pipeline import Extractor

        gpu = args.device == "cuda"
        self.embeddings = Embeddings(
            path=data["embedding_model"],
            method="sentence-transformers",  # txtai's default pools itself, 512-token inputs
            content=True,
            gpu=gpu,
            encodebatch=64,
        )
        self.embeddings.transform("load the model")
        self.passages = data_passages(data)
        self.articles = {p.chunk_id: p.article for p in self.passages}
        # the model's encode is wrapped to tell embedding time from the rest; the Extractor
        # searches for itself, and ``search`` stands in for ``embeddings.batchsearch`` to note
        # what it found and when
        self.clock = {"embed": 0.0, "search": 0.0}
        self.found: list[list[str]] = []
        self.asked: list[str] = []
        encode = self.embeddings.model.encode

        def timed_encode(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return encode(*a, **kw)
            finally:
                self.clock["embed"] += time.perf_counter() - t

        self.embeddings.model.encode = timed_encode
        self.extractor = Extractor(
            self.search,
            data["reader_model"],
            gpu=gpu,
            context=TOP_K,
            task="question-answering",
            dtype=torch.float32,  # the checkpoint is stored in float16 (see Haystack)
        )
        # txtai's Questions takes the arg-max start and end tokens and maps them back to words;
        # when the model points at [CLS] (its no-answer position: the shipped reader learnt to
        # abstain) there is no word and txtai raises a TypeError: taken here as no answer
        answer = self.extractor.model.answer
        self.cls_answers = 0

        def safe_answer(*a: Any) -> str | None:
            try:
                return answer(*a)  # type: ignore[no-any-return]
            except TypeError:
                self.cls_answers += 1
                return None

        self.extractor.model.answer = safe_answer
        self.runtime = (
            f"txtai {version('txtai')}: sentence-transformers (PyTorch); reader PyTorch fp32"
        )

    def search(self, queries: list[str], limit: int) -> list[list[dict[str, Any]]]:
        t = time.perf_counter()
        results: list[list[dict[str, Any]]] = self.embeddings.batchsearch(queries, limit)
        self.clock["search"] += time.perf_counter() - t
        self.found.append([r["id"] for r in results[0]])
        return results

    def ingest(self) -> dict[str, Any]:
        self.clock["embed"] = 0.0
        t0 = time.perf_counter()
        self.embeddings.index([(p.chunk_id, p.text, None) for p in self.passages])
        return {
            "ingest_s": time.perf_counter() - t0,
            "embed_s": self.clock["embed"],
            "chunks": self.embeddings.count(),
        }

    def ask(self, question: str) -> tuple[list[str], dict[str, float]]:
        self.asked.append(question)
        self.clock.update(embed=0.0, search=0.0)
        t0 = time.perf_counter()
        self.extractor([(None, question, question, False)])
        total = time.perf_counter() - t0
        stages = {
            "embed": self.clock["embed"] * 1000,
            "retrieve": (self.clock["search"] - self.clock["embed"]) * 1000,
            "read": (total - self.clock["search"]) * 1000,
        }
        return [self.articles[i] for i in self.found[-1]], stages

    def after(self, questions: list[dict[str, str]]) -> dict[str, Any]:
        """How much of the 5 passages' text txtai's reader saw: it reads their concatenation
        in one window of the model's 512 tokens, with no stride."""
        tokenizer = self.extractor.model.tokenizer
        text = {p.chunk_id: p.text for p in self.passages}
        shares = []
        for question, ids in zip(self.asked, self.found[-len(self.asked) :], strict=True):
            context = " ".join(text[i] for i in ids)
            n_context = len(tokenizer(context, add_special_tokens=False)["input_ids"])
            n_question = len(tokenizer(question, add_special_tokens=False)["input_ids"])
            room = tokenizer.model_max_length - n_question - 3
            shares.append(min(1.0, room / max(1, n_context)))
        return {
            "read_share": 100 * sum(shares) / max(1, len(shares)),
            "cls_answers": self.cls_answers,
            "readings": len(self.asked),
        }


SYSTEM_CLASSES: dict[str, type[System]] = {
    "ragqa": Ragqa,
    "ragqa-torch": Ragqa,
    "haystack": Haystack,
    "txtai": Txtai,
}


def data_passages(data: dict[str, Any]) -> list[Passage]:
    return [Passage(**p) for p in data["passages"]]


def run_worker(args: argparse.Namespace) -> None:
    """One system in this process. Loads its models, prints READY, then follows commands, one
    JSON line each on stdin: ``ingest`` (answered INGESTED; the first is followed by the warm-up
    questions) and ``ask`` (answered ANSWER); at the end of input it prints DONE. Protocol lines
    go to the original stdout; whatever the libraries print goes to stderr (the parent's log)."""
    import torch

    protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)

    def send(kind: str, payload: dict[str, Any]) -> None:
        protocol.write(f"{kind} {json.dumps(payload)}\n")

    torch.set_num_threads(args.threads)
    data = json.loads(args.data.read_text("utf-8"))
    questions = data["questions"]
    with tempfile.TemporaryDirectory(prefix=f"peers-{args.worker}-") as tmp:
        system = SYSTEM_CLASSES[args.worker](data, args, Path(tmp))
        send("READY", {"runtime": system.runtime})
        warm = False
        for line in sys.stdin:
            command = json.loads(line)
            if command["cmd"] == "ingest":
                load, cpu = os.getloadavg()[0], time.process_time()
                result = system.ingest()
                result["cpu_s"] = time.process_time() - cpu
                if not warm:
                    for q in questions[:WARM_QUESTIONS]:
                        system.ask(q["question"])
                    warm = True
                send("INGESTED", {**result, "load": load})
            else:
                t0, cpu = time.perf_counter(), time.process_time()
                found, stages = system.ask(command["question"])
                total = (time.perf_counter() - t0) * 1000
                cpu_ms = (time.process_time() - cpu) * 1000
                send("ANSWER", {"found": found[:TOP_K], "total": total, "cpu": cpu_ms, **stages})
        threads = torch.get_num_threads()  # as the questions ran (``after`` may search FAISS)
        extra = system.after(questions)
    send("DONE", {**extra, "torch_threads": threads, "peak_rss_mb": peak_rss_mb()})


# ---------------------------------------------------------------------- parent
def child_env(threads: int) -> dict[str, str]:
    n = str(threads)
    return {
        **os.environ,
        "OMP_NUM_THREADS": n,
        "MKL_NUM_THREADS": n,
        "OPENBLAS_NUM_THREADS": n,
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HAYSTACK_TELEMETRY_ENABLED": "False",
        "PYTHONWARNINGS": "ignore",
    }


class Worker:
    """A ``--worker`` subprocess for one system, spoken to in JSON lines."""

    def __init__(self, name: str, data_path: Path, args: argparse.Namespace, logs: Path) -> None:
        self.name = name
        self.log_path = logs / f"{name}.log"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name]
        cmd += ["--data", str(data_path), "--threads", str(args.threads), "--device", args.device]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                bufsize=0,
                env=child_env(args.threads),
            )
        self.buffer = b""
        self.row: dict[str, Any] = {"system": name}
        self.ingests: list[dict[str, Any]] = []
        self.answers: list[dict[str, Any]] = []

    def read(self, expect: str, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {expect} from {self.name} within {timeout:.0f} s")
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise EOFError(f"{self.name} exited before {expect}")
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        kind, _, payload = line.decode("utf-8").partition(" ")
        if kind != expect:
            raise RuntimeError(f"{self.name}: expected {expect}, got {line[:200]!r}")
        message: dict[str, Any] = json.loads(payload)
        return message

    def request(self, command: dict[str, str], expect: str, timeout: float) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode("utf-8"))
        return self.read(expect, timeout)

    def ready(self, timeout: float) -> None:
        self.row.update(self.read("READY", timeout))

    def ingest(self, timeout: float) -> None:
        self.ingests.append(self.request({"cmd": "ingest"}, "INGESTED", timeout))

    def ask(self, question: str, timeout: float) -> None:
        command = {"cmd": "ask", "question": question}
        self.answers.append(self.request(command, "ANSWER", timeout))

    def finish(self, timeout: float) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.row.update(self.read("DONE", timeout))
        self.proc.wait(timeout)

    def fail(self, exc: Exception) -> None:
        self.proc.kill()
        self.proc.wait()
        tail = self.log_path.read_text("utf-8", "replace").strip().splitlines()[-15:]
        print(f"{self.name} failed: {exc}", *tail, sep="\n", file=sys.stderr, flush=True)
        errors = [x for x in tail if "Error" in x or "Exception" in x]
        self.row = {"system": self.name, "error": (errors or [str(exc)])[-1]}


def run_systems(
    systems: Sequence[str], data: dict[str, Any], args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Start the systems (each loads its models), let each ingest alone, ``--ingest-rounds``
    times in rotating order, then ask each question of every system in turn, the order
    rotating, so that the machine's changing load falls on all of them alike."""
    questions = data["questions"]
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        data_path = Path(tmp) / "data.json"
        data_path.write_text(json.dumps(data), "utf-8")
        workers: list[Worker] = []
        for name in systems:
            print(f"== {name}: load the models", file=sys.stderr, flush=True)
            worker = Worker(name, data_path, args, Path(tmp))
            workers.append(worker)
            step(worker, Worker.ready, args.timeout)
        for round_ in range(args.ingest_rounds):
            for worker in rotated(workers, round_):
                print(f"== {worker.name}: ingest ({round_ + 1})", file=sys.stderr, flush=True)
                step(worker, Worker.ingest, args.timeout)
        print(f"== {len(questions)} questions, round robin", file=sys.stderr, flush=True)
        for i, q in enumerate(questions):
            for worker in rotated(workers, i):
                step(worker, Worker.ask, q["question"], args.timeout)
        for worker in workers:
            step(worker, Worker.finish, args.timeout)
    rows = []
    for worker in workers:
        row = worker.row
        if "error" not in row:
            row.update(min(worker.ingests, key=lambda x: float(x["ingest_s"])))
            row["ingest_runs"] = [x["ingest_s"] for x in worker.ingests]
            row.update(summarise(worker.answers, questions))
            print({k: v for k, v in row.items() if k != "runtime"}, file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def rotated(workers: list[Worker], turn: int) -> list[Worker]:
    live = [w for w in workers if "error" not in w.row]
    turn %= max(1, len(live))
    return live[turn:] + live[:turn]


def step(worker: Worker, action: Callable[..., None], *args: Any) -> None:
    """Run one exchange with a live worker; a worker that dies, hangs or answers out of turn
    is stopped and reported as failed, and the others go on."""
    if "error" in worker.row:
        return
    try:
        action(worker, *args)
    except (EOFError, TimeoutError, RuntimeError, BrokenPipeError) as exc:
        worker.fail(exc)


def summarise(answers: list[dict[str, Any]], questions: list[dict[str, Any]]) -> dict[str, Any]:
    hits = sum(q["article"] in a["found"] for a, q in zip(answers, questions, strict=True))
    out: dict[str, Any] = {"questions": len(answers), "recall": 100 * hits / len(answers)}
    for key in ("total", "cpu", *STAGES):
        values = [float(a[key]) for a in answers]
        out[f"{key}_p50"] = percentile(values, 50)
        out[f"{key}_p95"] = percentile(values, 95)
    return out


def ratio(ours: dict[str, Any], theirs: dict[str, Any], key: str) -> str:
    return f"{ours[key] / theirs[key]:.2f}" if theirs.get(key) else "n/a"


def report(rows: list[dict[str, Any]], data: dict[str, Any], args: argparse.Namespace) -> str:
    ok = [r for r in rows if "error" not in r]
    n_articles = len({p["article"] for p in data["passages"]})
    ingest_table = markdown_table(
        [
            "system",
            "embed + index s",
            "of which embed s",
            "chunks/s",
            "CPU s",
            "load avg at start",
            "peak RSS MB",
        ],
        [
            [
                r["system"],
                r["ingest_s"],
                r["embed_s"],
                r["chunks"] / r["ingest_s"],
                r["cpu_s"],
                f"{r['load']:.1f}",
                f"{r['peak_rss_mb']:.0f}",
            ]
            for r in ok
        ],
    )
    query_table = markdown_table(
        [
            "system",
            "p50 ms",
            "p95 ms",
            "embed p50",
            "retrieve p50",
            "read p50",
            "CPU p50 ms",
            "recall@5",
            "recall@5 dense only",
        ],
        [
            [
                r["system"],
                r["total_p50"],
                r["total_p95"],
                r["embed_p50"],
                r["retrieve_p50"],
                r["read_p50"],
                r["cpu_p50"],
                f"{r['recall']:.1f}",
                f"{r.get('recall_dense', r['recall']):.1f}",
            ]
            for r in ok
        ],
    )
    ratio_rows = []
    for ours in (r for r in ok if r["system"].startswith("ragqa")):
        for theirs in (r for r in ok if r["system"] in PEERS):
            ratio_rows.append(
                [
                    f"{ours['system']} / {theirs['system']}",
                    ratio(ours, theirs, "ingest_s"),
                    ratio(ours, theirs, "cpu_s"),
                    ratio(ours, theirs, "total_p50"),
                    ratio(ours, theirs, "total_p95"),
                    ratio(ours, theirs, "cpu_p50"),
                    ratio(ours, theirs, "embed_p50"),
                    ratio(ours, theirs, "read_p50"),
                    f"{ours['recall'] - theirs['recall']:+.1f}",
                ]
            )
    ratios = markdown_table(
        [
            "ragqa / peer",
            "ingest time",
            "ingest CPU",
            "query p50",
            "query p95",
            "query CPU p50",
            "embed p50",
            "read p50",
            "recall@5, points",
        ],
        ratio_rows,
    )
    lines = [
        f"{n_articles} BBC articles, {len(data['passages'])} chunks (ragqa's chunker, the article "
        f"title before each chunk's text), {len(data['questions'])} hand-written questions. Each "
        f"system in its own process on {args.threads} thread(s), every model loaded and warmed "
        f"up ({WARM_QUESTIONS} questions) before timing. The systems ingest one at a time, "
        f"{args.ingest_rounds} time(s) each in rotating order (the fastest run is shown, with the "
        "load average when it started); then each question goes to every system in turn, the "
        "order rotating, one at a time. "
        "Same embedding weights (all-MiniLM-L6-v2, 256-token inputs) and reader weights "
        f"(qa/reader_model) everywhere, by local path, offline; {TOP_K} passages retrieved and "
        "handed to the reader. Latency stages are medians (ms); recall@5: the article the "
        "question was written about is among the 5 passages.",
        "",
        f"Ingestion (the fastest of {args.ingest_rounds} run(s); CPU: the process's user + "
        "system time):",
        "",
        ingest_table,
        "",
        "Questions (ms; CPU: the process's CPU time per question):",
        "",
        query_table,
        "",
        "ragqa's figures as ratios to each peer's (below 1: ragqa takes less time; recall: "
        "ragqa's minus the peer's, in points):",
        "",
        ratios,
        "",
        *notes(rows, data),
        "",
        f"Command: `python bench/peers.py {' '.join(sys.argv[1:])}`  ",
        f"Machine: {machine_line(args.threads)}",
    ]
    return "\n".join(lines)


def notes(rows: list[dict[str, Any]], data: dict[str, Any]) -> list[str]:
    """What each system ran, and what differs between them that a setting cannot align."""
    by_name = {r["system"]: r for r in rows}
    out = [f"- {r['system']}: {r['runtime']}." for r in rows if "runtime" in r]
    ragqa = by_name.get("ragqa", {})
    if "parse_chunk_s" in ragqa:
        out.append(
            f"- ragqa's ingestion also parsed and chunked the files ({ragqa['parse_chunk_s']:.2f}"
            " s, not in its embed + index time but in its CPU time; the peers were handed the "
            "chunks), and its index time "
            "includes building BM25 and writing the snapshot to disk (fsynced); Haystack's and "
            "txtai's stores stay in memory."
        )
    if any(r["system"] == "ragqa-torch" for r in rows):
        out.append(
            "- ragqa runs its defaults: embedding on ONNX Runtime (the same vectors as PyTorch) "
            "and the reader on ONNX Runtime in int8. ragqa-torch is the same pipeline on the "
            "peers' runtimes (sentence-transformers and a float32 reader on PyTorch), so its "
            "ratios show the pipeline alone and ragqa's the runtimes on top."
        )
    out.append(
        "- Retrieval: ragqa fuses exact FAISS search and bm25s (stemmed) by reciprocal rank "
        f"(k 60, {CANDIDATES} candidates each); Haystack fuses its in-memory BM25 (unstemmed) "
        f"and exact embedding search ({CANDIDATES} each) with DocumentJoiner's reciprocal rank "
        "fusion; txtai's Embeddings is dense only (exact FAISS), as asked."
    )
    txtai = by_name.get("txtai", {})
    share = (
        f": on average {txtai['read_share']:.0f}% of the passages' tokens"
        if "read_share" in txtai
        else ""
    )
    out.append(
        "- Reading: ragqa and Haystack read each of the 5 passages whole, in 384-token windows "
        "with a 128-token stride; txtai's Extractor joins the passages into one context and its "
        f"reader reads the first 512 tokens of it, with no stride{share}, so its read time "
        "covers less text."
    )
    if txtai.get("cls_answers"):
        out.append(
            f"- txtai's reader raised a TypeError on {txtai['cls_answers']} readings (warm-up "
            "included), where the model's best start or end was [CLS], its no-answer position; "
            "the benchmark takes those as no answer."
        )
    runs = [
        f"{r['system']} " + ", ".join(f"{x:.1f}" for x in r["ingest_runs"])
        for r in rows
        if len(r.get("ingest_runs", [])) > 1
    ]
    if runs:
        out.append(f"- Every ingestion run, s: {'; '.join(runs)}.")
    out.append(
        "- recall@5 dense only: the same index searched by embedding alone (after timing, "
        "not timed), which is all txtai's Embeddings does here."
    )
    counts = {r["chunks"] for r in rows if "chunks" in r}
    if len(counts) > 1:
        out.append(f"- Chunk counts differ between the systems: {sorted(counts)}.")
    out += [f"- {r['system']} failed: `{r['error']}`" for r in rows if "error" in r]
    return out


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if "error" not in r]
    names = [r["system"] for r in ok]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    embed = [r["embed_s"] for r in ok]
    left.barh(names, embed, color="tab:blue", label="embed")
    left.barh(
        names,
        [r["ingest_s"] - e for r, e in zip(ok, embed, strict=True)],
        left=embed,
        color="tab:gray",
        label="index",
    )
    left.set_xlabel("ingestion, s")
    left.invert_yaxis()
    left.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    start = [0.0] * len(ok)
    for key in STAGES:
        values = [max(0.0, r[f"{key}_p50"]) for r in ok]
        right.barh(names, values, left=start, label=f"{key} p50")
        start = [a + b for a, b in zip(start, values, strict=True)]
    right.scatter([r["total_p95"] for r in ok], names, marker="|", s=300, c="k", label="p95")
    right.set_xlabel("query latency, ms")
    right.invert_yaxis()
    right.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=4)
    for ax in (left, right):
        ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=None, help="BBC articles (300)")
    parser.add_argument("--questions", type=int, default=None, help="questions asked (100)")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="12 articles, 6 questions by default")
    parser.add_argument(
        "--ingest-rounds", type=int, default=None, help="ingestions per system, best one reported"
    )
    parser.add_argument("--timeout", type=float, default=1800, help="s for any one step")
    parser.add_argument("--name", default=None, help="results file name (default: peers)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", choices=SYSTEMS, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(args)
        return
    args.articles = args.articles or (12 if args.quick else 300)
    args.questions = args.questions or (6 if args.quick else 100)
    args.ingest_rounds = args.ingest_rounds or (1 if args.quick else 2)
    systems = args.systems.split(",")
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown:
        parser.error(f"unknown systems {unknown}; choose from {SYSTEMS}")

    from embeddings import resolve_model_path
    from qa.readers import PACKAGED_READER_DIR

    files = bbc_files(args.articles)
    passages = build_corpus(files)
    articles = {p.article for p in passages}
    questions = bbc_questions(args.questions, articles=articles)
    data = {
        "files": [str(f) for f in files],
        "embedding_model": resolve_model_path("all-MiniLM-L6-v2"),
        "reader_model": str(PACKAGED_READER_DIR),
        "passages": [asdict(p) for p in passages],
        "questions": [{"question": q.question, "article": q.article} for q in questions],
    }
    rows = run_systems(systems, data, args)
    name = args.name or ("peers_quick" if args.quick else "peers")
    if any("error" not in r for r in rows):
        plot(rows, args.out / f"{name}.png")
    body = report(rows, data, args) + f"\n\n![ingestion and query latency per system]({name}.png)"
    path = write_result(name, "ragqa beside Haystack and txtai", body, args.out)
    print(path.read_text("utf-8"))
    if any("error" in r for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
