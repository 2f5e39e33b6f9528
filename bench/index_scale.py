"""Vector index kinds at 10k, 100k and 1M chunks: build time, memory, search p95, recall@10.

    python bench/index_scale.py --base-index /tmp/bbcidx/onnx-int8     # real BBC embeddings
    python bench/index_scale.py --quick                                 # 2k and 5k, a smoke run

The first vectors are real chunk embeddings from an index built by ``bench/ingest_bbc.py
--keep-index`` (without ``--base-index``, BBC articles are embedded here); larger sizes are
made of those plus Gaussian noise, renormalised (cosine about 0.9 to the row they come from),
so they are shaped like real ones. Queries are real hand-written BBC questions, embedded with
the same model, searched one at a time as the service does; recall@10 is against exact search.
Writes ``bench/results/index_scale.md`` and ``index_scale.png``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from _common import (
    RESULTS,
    bbc_files,
    bbc_questions,
    machine_line,
    markdown_table,
    percentile,
    write_result,
)
from tqdm import tqdm


def base_vectors(args: argparse.Namespace, embedder: object) -> np.ndarray:
    if args.base_index:
        from qa.store import IndexStore

        return IndexStore(args.base_index).load().embeddings
    from qa.loaders import load_file

    texts = []
    for path in bbc_files(args.base_articles):
        for doc in load_file(path):
            text = getattr(doc, "text", "")
            texts += [text[i : i + 1000] for i in range(0, len(text), 800)]
    return embedder.encode(texts, show_progress=True)  # type: ignore[attr-defined]


def grow(base: np.ndarray, n: int, seed: int) -> np.ndarray:
    if n <= len(base):
        return np.ascontiguousarray(base[:n])
    rng = np.random.default_rng(seed)
    extra = n - len(base)
    out = np.empty((n, base.shape[1]), dtype=np.float32)
    out[: len(base)] = base
    sigma = np.sqrt((1 / 0.9**2 - 1) / base.shape[1])
    for start in range(0, extra, 100_000):
        size = min(100_000, extra - start)
        rows = base[rng.integers(0, len(base), size)]
        noisy = rows + rng.normal(scale=sigma, size=rows.shape).astype(np.float32)
        noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
        out[len(base) + start : len(base) + start + size] = noisy
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--kinds", default="flat,hnsw,ivf-sq8,ivf-pq")
    parser.add_argument("--hnsw-max", type=int, default=100_000, help="largest size for hnsw")
    parser.add_argument("--base-index", type=Path, default=None)
    parser.add_argument("--base-articles", type=int, default=300)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--search-threads", type=int, default=1, help="threads per query")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="2k and 5k vectors, 50 queries")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:  # smaller defaults; sizes and counts given explicitly are kept
        defaults = {"sizes": "10000,100000,1000000", "queries": 300, "base_articles": 300}
        quick = {"sizes": "2000,5000", "queries": 50, "base_articles": 40}
        for key, value in quick.items():
            if getattr(args, key) == defaults[key]:
                setattr(args, key, value)

    import faiss

    from embeddings import Embedder
    from qa import vector_index as vi

    faiss.omp_set_num_threads(args.threads)
    if args.device == "cuda" and not hasattr(faiss, "StandardGpuResources"):
        print("faiss has no GPU support here; running on the CPU", file=sys.stderr)
    embedder = Embedder("all-MiniLM-L6-v2", backend="onnx-int8", threads=args.threads)
    base = base_vectors(args, embedder)
    questions = [q.question for q in bbc_questions(args.queries)]
    queries = embedder.encode(questions)
    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = args.kinds.split(",")
    rows = []
    for n in sizes:
        data = grow(base, n, seed=n)
        exact = faiss.IndexFlatIP(data.shape[1])
        exact.add(data)
        _, truth = exact.search(queries, 10)
        for kind in kinds:
            if kind == "hnsw" and n > args.hnsw_max:
                continue
            t0 = time.perf_counter()
            faiss.omp_set_num_threads(args.threads)
            index = vi.build_index(data, kind)
            build_s = time.perf_counter() - t0
            index.search(queries[:5], 10)  # warm-up
            faiss.omp_set_num_threads(args.search_threads)  # as qa.vector_index.search does
            times, found = [], []
            for q in tqdm(queries, desc=f"{kind} {n:,}", leave=False):
                t1 = time.perf_counter()
                _, ids = index.search(q.reshape(1, -1), 10)
                times.append((time.perf_counter() - t1) * 1000)
                found.append(ids[0])
            rows.append(
                {
                    "n": n,
                    "kind": kind,
                    "build_s": build_s,
                    "mb": vi.index_bytes(index) / 2**20,
                    "p50": percentile(times, 50),
                    "p95": percentile(times, 95),
                    "recall": vi.recall_at_k(np.array(found), truth),
                    "nprobe": getattr(index, "nprobe", ""),
                }
            )
            print(rows[-1], file=sys.stderr, flush=True)
            del index
        del data, exact
    name = "index_scale_quick" if args.quick else "index_scale"
    plot(rows, args.out / f"{name}.png")
    table = markdown_table(
        [
            "chunks",
            "kind",
            "build s",
            "memory MB",
            "search p50 ms",
            "search p95 ms",
            "recall@10",
            "nprobe",
        ],
        [
            [
                f"{r['n']:,}",
                r["kind"],
                r["build_s"],
                r["mb"],
                r["p50"],
                r["p95"],
                r["recall"],
                r["nprobe"],
            ]
            for r in rows
        ],
    )
    body = "\n".join(
        [
            f"{len(base):,} real chunk embeddings (384-d), the rest synthetic; {len(queries)} "
            "real BBC questions searched one at a time on "
            f"{args.search_threads} thread(s) (builds on {args.threads}); recall@10 against "
            "exact search; memory is the serialised index size.",
            "",
            table,
            "",
            f"Command: `python bench/index_scale.py {' '.join(sys.argv[1:])}`  ",
            f"Machine: {machine_line(args.threads)}",
            "",
            f"![latency and memory against size]({name}.png)",
        ]
    )
    path = write_result(name, "Vector index at scale", body, args.out)
    print(path.read_text("utf-8"))


def plot(rows: list[dict[str, object]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    for kind in dict.fromkeys(str(r["kind"]) for r in rows):
        mine = [r for r in rows if r["kind"] == kind]
        xs = [r["n"] for r in mine]
        ax1.plot(xs, [r["p95"] for r in mine], marker="o", label=kind)
        ax2.plot(xs, [r["mb"] for r in mine], marker="o", label=kind)
    for ax, label in ((ax1, "search p95, ms"), (ax2, "index memory, MB")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("chunks")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    ax1.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
