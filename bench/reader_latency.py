"""Read latency of the readers for one question over five passages, on this machine's CPU.

    python bench/reader_latency.py [--runs 30] [--threads 2]

Passages are the five best chunks retrieved for each question from a temporary index of
``seeds/``; each reader configuration reads them ``--runs`` times per question after a warm-up.
Prints a markdown table (p50/p95 in milliseconds).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from qa.ingest import Ingestor
from qa.pipeline import QAPipeline
from qa.readers import build_reader
from qa.settings import Settings

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = [
    "Who closed the 2019 conference?",
    "How many members does IFLA have?",
    "Where was the 2019 Chinese Library Annual Conference closed?",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(index_dir=Path(tmp) / "index")
        pipeline = QAPipeline(settings)
        Ingestor(settings, pipeline.embedder).ingest([REPO / "seeds"], progress=False)
        batches = [pipeline.retrieve(q, 5)[0] for q in QUESTIONS]
    configs = {
        "transformers (shipped model), PyTorch fp32": settings.model_copy(
            update={"reader_backend": "torch", "reader_quantize": False}
        ),
        "transformers (shipped model), PyTorch int8": settings.model_copy(
            update={"reader_backend": "torch", "reader_quantize": True}
        ),
        "transformers (shipped model), ONNX Runtime fp32": settings.model_copy(
            update={"reader_backend": "onnx"}
        ),
        "transformers (shipped model), ONNX Runtime int8 (default)": settings.model_copy(
            update={"reader_backend": "onnx-int8"}
        ),
        "heuristic": settings.model_copy(update={"reader": "heuristic"}),
    }
    print(f"| reader | p50 ms | p95 ms | runs | torch threads: {args.threads} |")
    print("|---|---:|---:|---:|---|")
    for name, cfg in configs.items():
        reader = build_reader(cfg, encode=pipeline.embedder.encode)
        times = []
        for question, passages in zip(QUESTIONS, batches, strict=True):
            reader.read(question, passages)  # warm-up
            for _ in range(args.runs):
                t0 = time.perf_counter()
                reader.read(question, passages)
                times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
        print(f"| {name} | {statistics.median(times):.1f} | {p95:.1f} | {len(times)} | |")


if __name__ == "__main__":
    main()
