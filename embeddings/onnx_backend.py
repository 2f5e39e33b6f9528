"""Sentence embeddings with ONNX Runtime: the exported transformer plus the model's pooling.

Reads the sentence-transformers folder layout (``modules.json``, ``1_Pooling/config.json``,
``sentence_bert_config.json``) so the vectors match the torch backend's: same tokenizer, same
truncation, same pooling, same normalisation. Texts are tokenised once, sorted by length and
batched, so a batch is padded only to its own longest text; on CPU, batches run side by side,
one single-threaded run per thread.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from embeddings.onnx_export import OnnxVariant, ensure_onnx_model, session

MAX_BATCH_TOKENS = 1024  # rows x padded width of one run when batches run side by side
POOLING_MODES = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
}


def _usable_cpus() -> int:
    affinity = getattr(os, "sched_getaffinity", None)  # Linux: the CPUs this process may use
    return len(affinity(0)) if affinity else os.cpu_count() or 1


class UnsupportedModelError(ValueError):
    """The model's sentence-transformers pipeline is not one the ONNX backend reproduces."""


def _read_pipeline(model_path: Path) -> tuple[str, bool, int, int | None]:
    """(pooling mode, normalise?, max sequence length, dimension) from the model folder."""
    modules_file = model_path / "modules.json"
    if not modules_file.is_file():
        raise UnsupportedModelError(
            f"{model_path} has no modules.json (not a sentence-transformers folder)"
        )
    modules = json.loads(modules_file.read_text("utf-8"))
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise UnsupportedModelError(
            f"{model_path}: the onnx backends support Transformer+Pooling(+Normalize) models, "
            f"not {kinds}; use RAGQA_EMBEDDING_BACKEND=torch"
        )
    pooling_dir = model_path / modules[1]["path"]
    pooling = json.loads((pooling_dir / "config.json").read_text("utf-8"))
    active = [mode for key, mode in POOLING_MODES.items() if pooling.get(key)]
    others = [k for k, v in pooling.items() if k.startswith("pooling_mode") and v]
    if len(active) != 1 or len(others) != 1:
        raise UnsupportedModelError(f"{model_path}: unsupported pooling {others}")
    max_len = 512
    st_config = model_path / "sentence_bert_config.json"
    if st_config.is_file():
        max_len = int(json.loads(st_config.read_text("utf-8")).get("max_seq_length") or max_len)
    dim = pooling.get("word_embedding_dimension")
    return active[0], len(kinds) == 3, max_len, int(dim) if dim else None


class OnnxSentenceEncoder:
    """Sentence vectors from an ONNX export of the model, run by ONNX Runtime.

    On CPU with ``threads`` > 1 (or unset: the CPUs this process may use), batches run side by
    side, one single-threaded ONNX Runtime run per thread, instead of one run split over all
    threads: the threads never wait for each other inside a layer, which on 2 busy cores took
    a quarter to a third less CPU time per chunk (``bench/onnx_variants.py``). A batch then
    holds at most ``MAX_BATCH_TOKENS`` padded tokens, small enough to stay in cache.
    """

    def __init__(
        self,
        model_path: Path,
        cache_dir: Path,
        variant: OnnxVariant,
        *,
        device: str = "cpu",
        threads: int | None = None,
        onnx_path: Path | None = None,
        batch_parallel: bool = True,
    ) -> None:
        """``onnx_path``: run that file instead of the cached export (to compare recipes);
        ``batch_parallel=False``: one run at a time on ``threads`` threads."""
        from onnxruntime import get_available_providers as available_providers
        from transformers import AutoTokenizer

        self.pooling, self.normalize, max_len, self._dimension = _read_pipeline(model_path)
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_path), local_files_only=True)
        self.max_seq_length = min(max_len, int(self.tokenizer.model_max_length or max_len))
        self.onnx_path = onnx_path or ensure_onnx_model(model_path, cache_dir, variant)
        cuda = device.startswith("cuda") and "CUDAExecutionProvider" in available_providers()
        self.workers = (threads or _usable_cpus()) if batch_parallel and not cuda else 1
        # batches side by side: one single-threaded run per worker
        self.session = session(self.onnx_path, 1 if self.workers > 1 else threads, device)
        self._inputs = {i.name for i in self.session.get_inputs()}

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(self.encode(["dimension probe"]).shape[1])
        return self._dimension

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer(
            list(texts), truncation=True, max_length=self.max_seq_length, add_special_tokens=True
        )["input_ids"]

    def batches(self, ids: Sequence[Sequence[int]], batch_size: int) -> list[list[int]]:
        """Row numbers per batch: longest first, at most ``batch_size`` rows and, when batches
        run side by side, at most ``MAX_BATCH_TOKENS`` padded tokens (never less than one row)."""
        budget = MAX_BATCH_TOKENS if self.workers > 1 else None
        out: list[list[int]] = []
        for row in sorted(range(len(ids)), key=lambda i: -len(ids[i])):
            last = out[-1] if out else []
            width = len(ids[last[0]]) if last else 0  # the first row is the longest
            full = len(last) >= batch_size or (budget and (len(last) + 1) * width > budget)
            if not last or full:
                out.append([row])
            else:
                last.append(row)
        return out

    def _embed(self, ids: Sequence[Sequence[int]], rows: list[int]) -> np.ndarray:
        pad = int(self.tokenizer.pad_token_id or 0)
        width = max(len(ids[r]) for r in rows)
        input_ids = np.full((len(rows), width), pad, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for j, r in enumerate(rows):
            input_ids[j, : len(ids[r])] = ids[r]
            mask[j, : len(ids[r])] = 1
        feed = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        return self._pool(self.session.run(None, feed)[0], mask)

    def encode_ids(
        self, ids: Sequence[Sequence[int]], batch_size: int, show_progress: bool = False
    ) -> np.ndarray:
        """Embed already-tokenised texts, longest first, each batch padded to its own longest."""
        batches = self.batches(ids, batch_size)
        out = np.zeros((len(ids), 0), dtype=np.float32)
        bar = tqdm(total=len(batches), desc="Embedding", unit="batch", disable=not show_progress)
        with ThreadPoolExecutor(min(self.workers, len(batches)) or 1) as pool:
            results = (
                pool.map(partial(self._embed, ids), batches)
                if self.workers > 1 and len(batches) > 1
                else (self._embed(ids, rows) for rows in batches)
            )
            for rows, pooled in zip(batches, results, strict=True):
                if out.shape[1] == 0:
                    out = np.zeros((len(ids), pooled.shape[1]), dtype=np.float32)
                out[rows] = pooled
                bar.update()
        bar.close()
        if self.normalize and len(out):
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False
    ) -> np.ndarray:
        return self.encode_ids(self.tokenize(texts), batch_size, show_progress)

    def _pool(self, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if self.pooling == "cls":
            return hidden[:, 0].astype(np.float32)
        m = mask[..., None].astype(np.float32)
        if self.pooling == "max":
            return np.where(m > 0, hidden, -1e9).max(axis=1).astype(np.float32)
        return ((hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)).astype(np.float32)
