"""Sentence embeddings with ONNX Runtime: the exported transformer plus the model's pooling.

Reads the sentence-transformers folder layout (``modules.json``, ``1_Pooling/config.json``,
``sentence_bert_config.json``) so the vectors match the torch backend's: same tokenizer, same
truncation, same pooling, same normalisation. Texts are tokenised once, sorted by length and
batched, so a batch is padded only to its own longest text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from embeddings.onnx_export import OnnxVariant, ensure_onnx_model

POOLING_MODES = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
}


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
    def __init__(
        self,
        model_path: Path,
        cache_dir: Path,
        variant: OnnxVariant,
        *,
        device: str = "cpu",
        threads: int | None = None,
    ) -> None:
        import onnxruntime as ort
        from transformers import AutoTokenizer

        self.pooling, self.normalize, max_len, self._dimension = _read_pipeline(model_path)
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_path), local_files_only=True)
        self.max_seq_length = min(max_len, int(self.tokenizer.model_max_length or max_len))
        self.onnx_path = ensure_onnx_model(model_path, cache_dir, variant)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(self.onnx_path), options, providers=providers)
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

    def encode_ids(
        self, ids: Sequence[Sequence[int]], batch_size: int, show_progress: bool = False
    ) -> np.ndarray:
        """Embed already-tokenised texts, longest first, each batch padded to its own longest."""
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        out = np.zeros((len(ids), 0), dtype=np.float32)
        pad = int(self.tokenizer.pad_token_id or 0)
        starts = range(0, len(order), batch_size)
        for b in tqdm(starts, desc="Embedding", unit="batch", disable=not show_progress):
            rows = order[b : b + batch_size]
            width = max(len(ids[r]) for r in rows)
            input_ids = np.full((len(rows), width), pad, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for j, r in enumerate(rows):
                input_ids[j, : len(ids[r])] = ids[r]
                mask[j, : len(ids[r])] = 1
            feed = {"input_ids": input_ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feed["token_type_ids"] = np.zeros_like(input_ids)
            hidden = self.session.run(None, feed)[0]
            pooled = self._pool(hidden, mask)
            if out.shape[1] == 0:
                out = np.zeros((len(ids), pooled.shape[1]), dtype=np.float32)
            out[rows] = pooled
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
