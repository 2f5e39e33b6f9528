"""Export a transformer to ONNX (and int8) once, into a shared cache, with fused kernels.

The recipe, from the local weights (nothing is downloaded):

1. ``torch.onnx.export`` with the TorchScript exporter (``dynamo=False``, opset 17), whose
   graph is the one ONNX Runtime's transformer optimiser recognises (the dynamo exporter's
   graph fused no attention block);
2. that optimiser (``onnxruntime.transformers.optimizer``, model type ``bert``) fuses each
   layer into Attention, LayerNormalization and BiasGelu kernels and the embeddings into
   EmbedLayerNormalization; the fused model must give the plain export's outputs (checked on
   a padded batch) or the plain export is kept, with a logged warning. Residual Add +
   LayerNormalization pairs are deliberately not fused into SkipLayerNormalization: on CPU
   that kernel took 18% of the int8 model's time against 4% for Add + LayerNormalization, so
   ``session()`` also turns off ONNX Runtime's own SkipLayerNormFusion on CPU;
3. ``onnx-int8``: ONNX Runtime's dynamic quantisation of the fused model's MatMul and
   Attention (QKV projection) weights: int8, one scale per output channel, activations
   quantised on the fly. The embedding tables stay fp32: quantising them too was at most 5%
   faster and moved the vectors further (``bench/onnx_variants.py``); leaving the QKV
   projection in fp32 was about a fifth slower.

Files are written to a temporary name in the cache folder and moved into place with
``os.replace`` under an exclusive ``fcntl`` lock, so concurrent processes export once and never
see a half-written model. ``{stem}.recipe.json`` beside a model says how it was made.
Open the models with ``session()``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np

log = logging.getLogger(__name__)

OnnxVariant = Literal["onnx", "onnx-int8"]
Head = Literal["encoder", "qa"]  # last hidden state (embeddings) or start/end logits (reader)
Exporter = Literal["torchscript", "dynamo"]
WeightType = Literal["qint8", "quint8"]
OUTPUTS: dict[str, list[str]] = {
    "encoder": ["last_hidden_state"],
    "qa": ["start_logits", "end_logits"],
}
OPSET = 17
EXPORT_VERSION = 5  # part of the cache key: bump when the export or quantisation recipe changes
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
QUANTIZED_OPS: tuple[str, ...] = ("MatMul", "Attention")  # not the embeddings' Gather
FUSION_TOLERANCE = 1e-3  # max abs difference allowed between fused and plain outputs
# ONNX Runtime graph rewrites that slow these models down on CPU (see the module docstring)
CPU_DISABLED_OPTIMIZERS: tuple[str, ...] = ("SkipLayerNormFusion",)


class OnnxExportError(RuntimeError):
    """The model cannot be exported or quantised (message says why)."""


class FusionError(RuntimeError):
    """The transformer optimiser did not give a usable fused model (message says why)."""


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


def _sample_inputs(model_path: Path) -> dict[str, np.ndarray]:
    """A padded batch of two text pairs (both segments, right padding), as int64 arrays."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_path), local_files_only=True)
    sample = tokenizer(
        ["an example sentence", "a second, longer example with more words in it"],
        ["its context", "another context"],
        padding=True,
        return_tensors="np",
    )
    feed = {
        name: np.asarray(sample[name], dtype=np.int64) for name in INPUT_NAMES if name in sample
    }
    feed.setdefault("token_type_ids", np.zeros_like(feed["input_ids"]))
    return feed


def export_plain(
    model_path: Path, target: Path, head: Head, exporter: Exporter = "torchscript"
) -> None:
    """The transformer (with the QA head for ``qa``) as one ONNX file, batch and length dynamic."""
    import torch
    from transformers import AutoModel, AutoModelForQuestionAnswering

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

    sample = _sample_inputs(model_path)
    args = tuple(torch.from_numpy(sample[name]) for name in INPUT_NAMES)
    options: dict[str, Any]
    if exporter == "dynamo":
        batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
        options = {
            "dynamic_shapes": {name: {0: batch, 1: seq} for name in INPUT_NAMES},
            "opset_version": 18,
            "dynamo": True,
            "external_data": False,
        }
    else:
        axes = {0: "batch", 1: "sequence"}
        options = {
            "dynamic_axes": {name: axes for name in (*INPUT_NAMES, *OUTPUTS[head])},
            "opset_version": OPSET,
            "dynamo": False,
            "do_constant_folding": True,
        }
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Encoder(model),
            args,
            str(target),
            input_names=list(INPUT_NAMES),
            output_names=OUTPUTS[head],
            verbose=False,
            **options,
        )


def session(
    path: Path, threads: int | None = None, device: str = "cpu", x64_quant_precision: bool = True
) -> Any:
    """An ONNX Runtime session for an exported model: all graph optimisations but those in
    ``CPU_DISABLED_OPTIMIZERS`` on CPU; ``threads``: intra-op threads (default: ONNX Runtime's);
    CUDA when ``device`` asks for it and ONNX Runtime has it. ``x64_quant_precision=False`` (for
    benchmarks only) lets int8 products overflow on x86 CPUs without VNNI, as described below."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    # on x86 CPUs without VNNI (AVX2, AVX-512 before VNNI) ONNX Runtime's fast u8s8 int8 matrix
    # products can overflow; this switches those to u8u8 there (a no-op elsewhere), so the
    # int8 models answer there as they do on CPUs with VNNI (README, Evaluation -> Results)
    options.add_session_config_entry(
        "session.x64quantprecision", "1" if x64_quant_precision else "0"
    )
    if threads:
        options.intra_op_num_threads = threads
    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        return ort.InferenceSession(str(path), options, providers=providers)
    return ort.InferenceSession(
        str(path),
        options,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=list(CPU_DISABLED_OPTIMIZERS),
    )


def _run(path: Path, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    session_ = session(path, threads=1)
    names = {i.name for i in session_.get_inputs()}
    return [
        np.asarray(x) for x in session_.run(None, {k: v for k, v in feed.items() if k in names})
    ]


def fuse(source: Path, target: Path, model_path: Path) -> dict[str, int]:
    """Fuse ``source`` into ``target`` with ONNX Runtime's transformer optimiser; fused-op counts.

    Raises ``FusionError`` when no attention block was fused or when the fused model's outputs
    differ from the plain one's by more than ``FUSION_TOLERANCE`` on a padded batch.
    """
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    options.enable_skip_layer_norm = False  # slower than Add + LayerNormalization on CPU
    options.enable_bias_skip_layer_norm = False
    config = json.loads((model_path / "config.json").read_text("utf-8"))
    heads = int(config.get("num_attention_heads") or 0)  # 0: let the optimiser detect them
    hidden = int(config.get("hidden_size") or 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = optimize_model(
            str(source),
            model_type="bert",
            num_heads=heads,
            hidden_size=hidden,
            optimization_options=options,
            opt_level=0,
        )
    stats = {k: int(v) for k, v in model.get_fused_operator_statistics().items() if v}
    if not stats.get("Attention", 0) + stats.get("MultiHeadAttention", 0):
        raise FusionError(f"no attention block was fused ({stats})")
    model.save_model_to_file(str(target))
    feed = _sample_inputs(model_path)
    for plain, fused in zip(_run(source, feed), _run(target, feed), strict=True):
        diff = float(np.abs(plain - fused).max())
        if not diff <= FUSION_TOLERANCE * max(1.0, float(np.abs(plain).max())):
            raise FusionError(f"fused outputs differ from the plain export's by {diff:.2e}")
    return stats


def quantize_int8(
    source: Path,
    target: Path,
    *,
    weight_type: WeightType = "qint8",
    op_types: Sequence[str] = QUANTIZED_OPS,
    exclude: Sequence[str] = (),
) -> None:
    """Dynamic int8 quantisation of ``op_types`` (per-channel weight scales), nodes in
    ``exclude`` left in fp32."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # per-channel weight scales: mean cosine to the fp32 vectors 0.995 on BBC text, against
    # 0.949 with one scale per tensor, at the same speed
    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8 if weight_type == "qint8" else QuantType.QUInt8,
        per_channel=True,
        reduce_range=False,
        op_types_to_quantize=list(op_types),
        nodes_to_exclude=list(exclude),
        # fused com.microsoft ops have no ONNX shape inference: their outputs are float
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def _build_fp32(model_path: Path, target: Path, head: Head, work: Path) -> dict[str, object]:
    """Export (and fuse, when that works) into ``target``; what was done, for the recipe file."""
    plain = work / "plain.onnx"
    recipe: dict[str, object] = {"exporter": "torchscript", "opset": OPSET}
    try:
        export_plain(model_path, plain, head, "torchscript")
    except Exception as exc:  # e.g. a torch without the TorchScript exporter
        log.warning("TorchScript ONNX export failed (%s); using the dynamo exporter", exc)
        recipe = {"exporter": "dynamo", "opset": 18, "torchscript_error": str(exc)[:500]}
        export_plain(model_path, plain, head, "dynamo")
    try:
        recipe["fused"] = fuse(plain, work / "fused.onnx", model_path)
        shutil.move(work / "fused.onnx", target)
    except Exception as exc:
        log.warning(
            "transformer fusion failed for %s (%s); using the plain export", model_path, exc
        )
        recipe["fused"] = {}
        recipe["fusion_error"] = str(exc)[:500]
        shutil.move(plain, target)
    return recipe


def _write_recipe(path: Path, recipe: dict[str, object]) -> None:
    tmp = _atomic_target(path.parent, path.name)
    tmp.write_text(json.dumps(recipe, indent=1, sort_keys=True), "utf-8")
    _publish(tmp, path)


def recipe_of(model: Path) -> dict[str, Any]:
    """How a cached model was made (exporter, fused-op counts, quantisation); {} if unknown."""
    path = model.with_suffix(".recipe.json")
    return json.loads(path.read_text("utf-8")) if path.is_file() else {}


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
                with tempfile.TemporaryDirectory(dir=folder, prefix=".work.") as work:
                    recipe = _build_fp32(model_path, tmp, head, Path(work))
                _publish(tmp, fp32)
            except Exception as exc:
                tmp.unlink(missing_ok=True)
                raise OnnxExportError(f"exporting {model_path} to ONNX failed: {exc}") from exc
            _write_recipe(fp32.with_suffix(".recipe.json"), recipe)
        if variant == "onnx-int8" and not final.is_file():
            log.info("quantising %s to int8", fp32)
            tmp = _atomic_target(folder, final.name)
            try:
                quantize_int8(fp32, tmp)
                _publish(tmp, final)
            except Exception as exc:
                tmp.unlink(missing_ok=True)
                raise OnnxExportError(f"quantising {fp32} failed: {exc}") from exc
            recipe = recipe_of(fp32) | {
                "int8": {"weights": "qint8 per-channel", "ops": list(QUANTIZED_OPS)}
            }
            _write_recipe(final.with_suffix(".recipe.json"), recipe)
        (folder / "source.json").write_text(
            json.dumps({"model_path": str(model_path.resolve())}), "utf-8"
        )
    return final
