"""Export a sentence-transformers encoder to ONNX (and int8) once, into a shared cache.

The transformer is exported with ``torch.onnx.export`` (the dynamo exporter) from the local
weights, so nothing is downloaded; ``onnx-int8`` is ONNX Runtime's dynamic quantisation of that
file (int8 per-channel weights, activations quantised on the fly). Files are written to a
temporary name in the cache folder and moved into place with ``os.replace`` under an exclusive
``fcntl`` lock, so concurrent processes export once and never see a half-written model.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

OnnxVariant = Literal["onnx", "onnx-int8"]
Head = Literal["encoder", "qa"]  # last hidden state (embeddings) or start/end logits (reader)
OUTPUTS: dict[str, list[str]] = {
    "encoder": ["last_hidden_state"],
    "qa": ["start_logits", "end_logits"],
}
OPSET = 18
EXPORT_VERSION = 2  # part of the cache key: bump when the export or quantisation recipe changes
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


class OnnxExportError(RuntimeError):
    """The model cannot be exported or quantised (message says why)."""


def _fingerprint(model_path: Path) -> str:
    """Identifies the weights cheaply: path, sizes and mtimes of the model's files, versions."""
    import onnxruntime
    import torch

    parts = [str(model_path.resolve()), torch.__version__, onnxruntime.__version__]
    parts += [str(OPSET), str(EXPORT_VERSION)]
    for name in sorted(os.listdir(model_path)):
        file = model_path / name
        if file.is_file():
            st = file.stat()
            parts.append(f"{name}:{st.st_size}:{int(st.st_mtime)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def cache_folder(model_path: Path, cache_dir: Path) -> Path:
    return cache_dir / f"{model_path.name or 'model'}-{_fingerprint(model_path)}"


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _atomic_target(folder: Path, name: str) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    return Path(tmp)


def _publish(tmp: Path, final: Path) -> None:
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, final)
    dir_fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _export_fp32(model_path: Path, target: Path, head: Head) -> None:
    import torch
    from transformers import AutoModel, AutoModelForQuestionAnswering, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_path), local_files_only=True)
    auto = AutoModelForQuestionAnswering if head == "qa" else AutoModel
    model = auto.from_pretrained(
        str(model_path), local_files_only=True, attn_implementation="eager", dtype=torch.float32
    ).eval()

    class _Encoder(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> tuple[torch.Tensor, ...]:
            out = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return tuple(getattr(out, name) for name in OUTPUTS[head])

    sample = tokenizer(
        ["an example sentence", "a second, longer example"], padding=True, return_tensors="pt"
    )
    if "token_type_ids" not in sample:
        sample["token_type_ids"] = torch.zeros_like(sample["input_ids"])
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    shapes = {name: {0: batch, 1: seq} for name in INPUT_NAMES}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Encoder(model),
            tuple(sample[name] for name in INPUT_NAMES),
            str(target),
            input_names=list(INPUT_NAMES),
            output_names=OUTPUTS[head],
            dynamic_shapes=shapes,
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
            verbose=False,
        )


def _quantize_int8(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # per-channel weight scales: mean cosine to the fp32 vectors 0.995 on BBC text, against
    # 0.949 with one scale per tensor, at the same speed
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True)


def ensure_onnx_model(
    model_path: Path, cache_dir: Path, variant: OnnxVariant, head: Head = "encoder"
) -> Path:
    """The path of the exported (and, for ``onnx-int8``, quantised) model, exporting it once."""
    if not (model_path / "config.json").is_file():
        raise OnnxExportError(
            f"{model_path} is not a local transformers model folder; the onnx backends need the "
            "weights on disk (use RAGQA_EMBEDDING_BACKEND=torch for hub ids)"
        )
    folder = cache_folder(model_path, cache_dir)
    stem = "model" if head == "encoder" else head
    fp32 = folder / f"{stem}.onnx"
    final = fp32 if variant == "onnx" else folder / f"{stem}_int8.onnx"
    if final.is_file():
        return final
    with _locked(folder):
        if not fp32.is_file():
            log.info("exporting %s to ONNX in %s (once)", model_path, folder)
            tmp = _atomic_target(folder, fp32.name)
            try:
                _export_fp32(model_path, tmp, head)
                _publish(tmp, fp32)
            except Exception as exc:
                tmp.unlink(missing_ok=True)
                raise OnnxExportError(f"exporting {model_path} to ONNX failed: {exc}") from exc
        if variant == "onnx-int8" and not final.is_file():
            log.info("quantising %s to int8", fp32)
            tmp = _atomic_target(folder, final.name)
            try:
                _quantize_int8(fp32, tmp)
                _publish(tmp, final)
            except Exception as exc:
                tmp.unlink(missing_ok=True)
                raise OnnxExportError(f"quantising {fp32} failed: {exc}") from exc
        (folder / "source.json").write_text(
            json.dumps({"model_path": str(model_path.resolve())}), "utf-8"
        )
    return final
