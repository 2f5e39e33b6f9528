"""Speed and vector agreement of ONNX export recipes for the embedding model, against PyTorch.

    python bench/onnx_variants.py                        # 500 BBC chunks, 2 threads, 2 rounds
    python bench/onnx_variants.py --recall               # also dense recall@5 on 600 articles
    python bench/onnx_variants.py --variants torch,fused-int8 --batch-sizes 16,32,64
    python bench/onnx_variants.py --reader               # the reader (head "qa"), 5 x 256 tokens
    python bench/onnx_variants.py --quick [--reader]     # a smoke run

Every recipe is built from the packaged MiniLM's local weights into ``--work`` (reused on later
runs) with the functions of ``embeddings/onnx_export.py``:

- ``dynamo``, ``dynamo-int8``: the dynamo exporter (opset 18), int8 of every op type ONNX
  Runtime quantises (the recipe before EXPORT_VERSION 3);
- ``plain``: the TorchScript exporter (opset 17), unfused;
- ``fused``: ``plain`` after ONNX Runtime's transformer optimiser (the ``onnx`` backend now);
- ``fused-int8``: ``fused`` with int8 weights, per channel, in the MatMuls and the Attention
  kernels' QKV projection (QAttention): the ``onnx-int8`` backend;
- ``fused-int8-matmul``: the MatMuls only (Attention in fp32);
- ``fused-int8-all``: also the embedding tables (QEmbedLayerNormalization);
- ``fused-int8-u8``: ``fused-int8`` with uint8 weights instead of int8;
- ONNX recipes run as the ``onnx`` backends run them (``onnx_export.session``; batches side by
  side, one single-threaded run per thread, at most 1,024 padded tokens a batch);
  ``+intra`` (``fused-int8+intra``) runs one batch at a time over all threads instead.

Chunks are made as ingestion makes them (same chunker, same title prefix). Timing rounds
alternate the variants, so a change in the machine's load hits them all; each figure is the
median (and best) over rounds, tokenisation included; the speed-up is the median of per-round
ratios to ``torch``. CPU ms/chunk is the process's CPU time (all threads), which a busy machine
disturbs less than wall time (threads spin-waiting for each other count, though). Agreement
is against the PyTorch (sentence-transformers) vectors of the same texts.

``--reader`` times the packaged reader (``qa/reader_model``) on one question and five passages
in one batch: PyTorch fp32 and int8 (the reader's default), the dynamo recipe (before
EXPORT_VERSION 3) and what ``ensure_onnx_model(..., head="qa")`` now gives (``onnx``,
``onnx-int8``), each opened as the reader opens it today; ``+session`` opens it with
``onnx_export.session`` (SkipLayerNormFusion off), ``+split`` also runs each passage on its own
single-threaded run, ``--threads`` at a time, as the embedding backend runs its batches (and
the reader's ONNX backends run theirs); ``+split-u8s8`` is ``+split`` without ONNX Runtime's
x64 quantisation precision (what the int8 reader ran before: faster on CPUs without VNNI, where
its u8s8 products overflow; the same elsewhere). The machine line says whether the CPU has VNNI.
Writes ``bench/results/<name>.md``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
from _common import (
    REPO,
    RESULTS,
    article_of,
    bbc_files,
    bbc_questions,
    machine_line,
    markdown_table,
    percentile,
    write_result,
)

VARIANTS = (
    "torch",
    "dynamo",
    "dynamo-int8",
    "plain",
    "fused",
    "fused-int8",
    "fused-int8-matmul",
    "fused-int8-all",
    "fused-int8-u8",
)
READER_VARIANTS = (
    "torch",
    "torch-int8",
    "dynamo",
    "dynamo-int8",
    "onnx",
    "onnx-int8",
    "onnx+session",
    "onnx-int8+session",
    "onnx+split",
    "onnx-int8+split",
    "onnx-int8+split-u8s8",
)
Encode = Callable[[Sequence[str], int], np.ndarray]
Head = Literal["encoder", "qa"]


def build(
    name: str, model: Path, work: Path, stats: dict[str, dict[str, int]], head: Head = "encoder"
) -> Path:
    """The ONNX file of recipe ``name`` (built once into ``work/head``)."""
    from embeddings.onnx_export import export_plain, fuse, quantize_int8

    path = work / head / f"{name}.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    if name == "fused":
        source = build("plain", model, work, stats, head)
        stats[name] = fuse(source, path, model)  # run every time: the statistics are reported
        return path
    if path.is_file():
        return path
    if name in ("dynamo", "plain"):
        export_plain(model, path, head, "dynamo" if name == "dynamo" else "torchscript")
    elif name == "dynamo-int8":
        quantize_int8(build("dynamo", model, work, stats, head), path, op_types=())
    elif name == "fused-int8":
        quantize_int8(build("fused", model, work, stats, head), path)
    elif name == "fused-int8-matmul":
        quantize_int8(build("fused", model, work, stats, head), path, op_types=("MatMul",))
    elif name == "fused-int8-all":
        quantize_int8(build("fused", model, work, stats, head), path, op_types=())
    elif name == "fused-int8-u8":
        quantize_int8(build("fused", model, work, stats, head), path, weight_type="quint8")
    else:
        raise ValueError(f"unknown variant {name!r}")
    return path


def encoder_for(
    name: str, model: Path, work: Path, stats: dict[str, dict[str, int]], threads: int
) -> Encode:
    """Encoder of recipe ``name``; ``recipe+intra``: one batch at a time over all threads."""
    from embeddings import Embedder

    if name == "torch":
        torch_embedder = Embedder(str(model), backend="torch", threads=threads)
        return lambda texts, batch: torch_model_encode(torch_embedder, texts, batch)
    from embeddings.onnx_backend import OnnxSentenceEncoder

    base, _, mode = name.partition("+")
    if mode not in ("", "intra"):
        raise ValueError(f"unknown run mode {mode!r} in {name!r}")
    path = build(base, model, work, stats)
    encoder = OnnxSentenceEncoder(
        model, work, "onnx", threads=threads, onnx_path=path, batch_parallel=not mode
    )
    return lambda texts, batch: encoder.encode(texts, batch)


def torch_model_encode(embedder: Any, texts: Sequence[str], batch: int) -> np.ndarray:
    embedder.batch_size = batch
    return embedder.encode(texts)


def bbc_chunks(articles: int) -> tuple[list[str], list[str]]:
    """(index texts, article of each) of ``articles`` BBC articles, chunked as ingestion does."""
    from embeddings import Embedder
    from qa.chunking import Chunker, index_text
    from qa.loaders import load_file
    from qa.settings import Settings
    from qa.types import Document

    settings = Settings()
    counter = Embedder(settings.embedding_model, backend="torch")
    chunker = Chunker(
        counter.count_tokens,
        max_tokens=settings.chunk_tokens,
        overlap_sentences=settings.chunk_overlap_sentences,
    )
    seen: set[str] = set()
    texts: list[str] = []
    owners: list[str] = []
    for path in bbc_files(articles):
        for doc in load_file(path):
            if not isinstance(doc, Document) or doc.doc_id in seen:
                continue
            seen.add(doc.doc_id)
            for chunk in chunker.chunk(doc):
                texts.append(index_text(doc.title, chunk.text))
                owners.append(article_of(doc.source))
    return texts, owners


def dense_recall5(
    chunks: np.ndarray, owners: list[str], questions: np.ndarray, gold: list[str]
) -> float:
    top = np.argsort(-(questions @ chunks.T), axis=1)[:, :5]
    return float(
        np.mean([any(owners[r] == g for r in row) for row, g in zip(top, gold, strict=True)])
    )


def reader_logits(
    name: str, work: Path, stats: dict[str, dict[str, int]], threads: int
) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """Start and end logits (stacked) of the packaged reader run by recipe ``name``."""
    import onnxruntime as ort
    import torch

    model = REPO / "qa" / "reader_model"
    if name.startswith("torch"):
        from transformers import AutoModelForQuestionAnswering

        net = AutoModelForQuestionAnswering.from_pretrained(
            str(model), local_files_only=True, dtype=torch.float32
        ).eval()
        if name == "torch-int8":  # the reader's default (qa/readers/transformers_reader.py)
            net = torch.ao.quantization.quantize_dynamic(net, {torch.nn.Linear}, dtype=torch.qint8)

        def run_torch(feed: dict[str, np.ndarray]) -> np.ndarray:
            with torch.inference_mode():
                out = net(**{k: torch.from_numpy(v) for k, v in feed.items()})
            return np.stack([out.start_logits.numpy(), out.end_logits.numpy()])

        return run_torch
    from embeddings.onnx_export import ensure_onnx_model, recipe_of, session

    base, _, mode = name.partition("+")
    if base in ("onnx", "onnx-int8"):  # what the reader's onnx backends load now
        path = ensure_onnx_model(model, work / "cache", base, head="qa")  # type: ignore[arg-type]
        stats["fused"] = recipe_of(path).get("fused", {})
    else:
        path = build(base, model, work, stats, "qa")
    if mode in ("session", "split", "split-u8s8"):  # onnx_export.session: no SkipLayerNormFusion
        runner = session(
            path,
            1 if mode.startswith("split") else threads,
            x64_quant_precision=mode != "split-u8s8",
        )
    else:  # a plain session, ONNX Runtime defaults (the reader runs "+split" since)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        runner = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    if not mode.startswith("split"):
        return lambda feed: np.stack(runner.run(None, feed))
    pool = ThreadPoolExecutor(threads)

    def run_split(feed: dict[str, np.ndarray]) -> np.ndarray:
        """One single-threaded run per passage, ``threads`` at a time."""
        rows = range(len(feed["input_ids"]))
        parts = pool.map(
            lambda r: runner.run(None, {k: v[r : r + 1] for k, v in feed.items()}), rows
        )
        return np.concatenate([np.stack(p) for p in parts], axis=1)

    return run_split


def reader_mode(args: argparse.Namespace) -> None:
    """5 BBC passages of ``--reader-tokens`` tokens with one question, as the reader sees them."""
    import torch
    from transformers import AutoTokenizer

    torch.set_num_threads(args.threads)
    texts, _ = bbc_chunks(40)
    question = bbc_questions(1)[0].question
    tokenizer = AutoTokenizer.from_pretrained(str(REPO / "qa" / "reader_model"))
    long_texts = sorted(texts, key=len)[-5:]  # chunks are ~200 tokens: join two per passage
    passages = [a + " " + b for a, b in zip(long_texts, texts[:5], strict=True)]
    enc = tokenizer(
        [question] * 5,
        passages,
        truncation="only_second",
        max_length=args.reader_tokens,
        padding="max_length",
        return_tensors="np",
    )
    feed = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
    stats: dict[str, dict[str, int]] = {}
    names = args.variants.split(",") if args.variants else list(READER_VARIANTS)
    runners = {n: reader_logits(n, args.work, stats, args.threads) for n in names}
    outputs = {n: runners[n](feed) for n in names}  # also the warm-up
    ms: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(args.runs):
        for n in names:
            t0 = time.perf_counter()
            runners[n](feed)
            ms[n].append(1000 * (time.perf_counter() - t0))
    reference = outputs[names[0]]
    base = "torch-int8" if "torch-int8" in names else names[0]  # the reader's default
    rows = []
    for n in names:
        out = outputs[n]
        same = (out.argmax(axis=2) == reference.argmax(axis=2)).mean()
        rows.append(
            [
                n,
                statistics.median(ms[n]),
                percentile(ms[n], 95),
                f"{statistics.median(ms[base]) / statistics.median(ms[n]):.2f}x",
                f"{float(np.abs(out - reference).max()):.1e}",
                f"{100 * same:.0f}%",
            ]
        )
    header = ["reader", "p50 ms", "p95 ms", f"speed vs {base}", "max abs logit diff", "same argmax"]
    lines = [
        f"The packaged reader (qa/reader_model) on one question and 5 BBC passages padded to "
        f"{feed['input_ids'].shape[1]} tokens (one batch), {args.threads} threads, {args.runs} "
        f"alternating runs; logits compared with {names[0]}'s (argmax: start and end positions).",
        "",
        markdown_table(header, rows),
        "",
        "Fused operators: "
        + (", ".join(f"{k} {v}" for k, v in sorted(stats.get("fused", {}).items())) or "n/a"),
        "",
        f"Command: `python bench/onnx_variants.py {' '.join(sys.argv[1:])}`  ",
        f"Machine: {machine_line(args.threads)}",
    ]
    title = "ONNX export recipes for the reader"
    path = write_result(args.name, title, "\n".join(lines), args.out)
    print(path.read_text("utf-8"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=None, help="default: all of the mode's")
    parser.add_argument("--articles", type=int, default=600)
    parser.add_argument("--chunks", type=int, default=500, help="timed sample of chunks")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-sizes", default="64")
    parser.add_argument("--recall", action="store_true", help="dense recall@5, all chunks")
    parser.add_argument("--questions", type=int, default=600)
    parser.add_argument("--work", type=Path, default=Path("/tmp/onnx_variants"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--name", default=None, help="results file (default by mode)")
    parser.add_argument("--reader", action="store_true", help="time the reader's recipes")
    parser.add_argument("--reader-tokens", type=int, default=256)
    parser.add_argument("--runs", type=int, default=15, help="reader runs per recipe")
    parser.add_argument("--quick", action="store_true", help="a smoke run: few texts, 1 round")
    args = parser.parse_args()
    suffix = "_quick" if args.quick else ""
    if args.reader:
        if args.quick:
            args.runs, args.variants = 2, args.variants or "torch,onnx-int8"
        args.name = args.name or f"onnx_variants_reader{suffix}"
        reader_mode(args)
        return
    if args.quick:
        args.articles, args.chunks, args.rounds = 10, 16, 1
        args.questions, args.variants = 20, args.variants or "torch,fused-int8"
    args.name = args.name or f"onnx_variants{suffix}"

    import torch

    from embeddings import resolve_model_path

    torch.set_num_threads(args.threads)
    names = (args.variants or ",".join(VARIANTS)).split(",")
    if "torch" not in names:
        names.insert(0, "torch")
    batches = [int(b) for b in args.batch_sizes.split(",")]
    model = Path(resolve_model_path("all-MiniLM-L6-v2"))
    args.work.mkdir(parents=True, exist_ok=True)
    texts, owners = bbc_chunks(args.articles)
    sample = random.Random(0).sample(texts, min(args.chunks, len(texts)))
    stats: dict[str, dict[str, int]] = {}
    encoders = {n: encoder_for(n, model, args.work, stats, args.threads) for n in names}
    keys = [(n, b) for n in names for b in batches]
    seconds: dict[tuple[str, int], list[float]] = {k: [] for k in keys}
    cpu: dict[tuple[str, int], list[float]] = {k: [] for k in keys}
    vectors: dict[str, np.ndarray] = {}
    for n in names:
        encoders[n](sample[:8], batches[0])  # warm-up
    for r in range(args.rounds):
        for key in keys if r % 2 == 0 else keys[::-1]:
            t0, c0 = time.perf_counter(), time.process_time()
            out = encoders[key[0]](sample, key[1])
            seconds[key].append(time.perf_counter() - t0)
            cpu[key].append(time.process_time() - c0)
            vectors.setdefault(key[0], out)
            load = os.getloadavg()[0]
            print(
                f"round {r} {key[0]} batch {key[1]}: "
                f"{len(sample) / seconds[key][-1]:.2f} chunks/s, load {load:.2f}",
                file=sys.stderr,
                flush=True,
            )

    recall: dict[str, float] = {}
    questions = []
    if args.recall:
        questions = bbc_questions(args.questions, articles=set(owners))
        gold = [q.article for q in questions]
        for n in names:
            chunk_vectors = encoders[n](texts, batches[0])
            query_vectors = encoders[n]([q.question for q in questions], batches[0])
            recall[n] = dense_recall5(chunk_vectors, owners, query_vectors, gold)

    reference = vectors["torch"]
    rows = []
    for n, b in keys:
        v = vectors[n]
        cos = (v * reference).sum(axis=1)
        torch_s = seconds[("torch", b)]
        ratios = [t / s for t, s in zip(torch_s, seconds[(n, b)], strict=True)]
        rows.append(
            [
                n,
                b,
                len(sample) / statistics.median(seconds[(n, b)]),
                len(sample) / min(seconds[(n, b)]),
                f"{statistics.median(ratios):.2f}x",
                1000 * statistics.median(cpu[(n, b)]) / len(sample),
                f"{statistics.median(cpu[('torch', b)]) / statistics.median(cpu[(n, b)]):.2f}x",
                f"{float(np.abs(v - reference).max()):.1e}",
                f"{float(cos.mean()):.5f}",
                f"{float(cos.min()):.5f}",
                f"{100 * recall[n]:.1f}" if n in recall else "",
            ]
        )
    header = [
        "variant",
        "batch",
        "chunks/s (median)",
        "chunks/s (best)",
        "vs torch",
        "CPU ms/chunk",
        "CPU vs torch",
        "max abs diff",
        "mean cosine",
        "min cosine",
        "recall@5 dense",
    ]
    if any(n.startswith("fused") for n in names) and "fused" not in stats:
        build("fused", model, args.work, stats)  # re-fuse for the statistics
    fused = stats.get("fused", {})
    lines = [
        f"{len(sample)} BBC chunks (a seeded sample of the {len(texts)} chunks of {args.articles} "
        f"articles), {args.threads} threads, {args.rounds} alternating rounds; agreement with the "
        "PyTorch vectors of the same chunks"
        + (
            f"; dense recall@5 over {len(questions)} hand-written questions, all "
            f"{len(texts)} chunks."
            if args.recall
            else "."
        ),
        "",
        markdown_table(header, rows),
        "",
        "Fused operators (ONNX Runtime transformer optimiser, TorchScript export): "
        + (", ".join(f"{k} {v}" for k, v in sorted(fused.items())) or "n/a"),
        "",
        f"Command: `python bench/onnx_variants.py {' '.join(sys.argv[1:])}`  ",
        f"Machine: {machine_line(args.threads)}",
    ]
    path = write_result(
        args.name, "ONNX export recipes for the embedding model", "\n".join(lines), args.out
    )
    print(path.read_text("utf-8"))


if __name__ == "__main__":
    main()
