"""A reader for any extractive QA checkpoint loaded with ``AutoModelForQuestionAnswering``.

Long passages are cut into overlapping windows (``max_seq_len`` tokens, ``stride`` tokens of
overlap); all windows of all passages run in batches; each window proposes its n-best spans
(end after start, at most ``max_answer_tokens`` long, inside the passage). A span's score is,
with ``span_score="probability"``, ``p_start * p_end`` with both softmaxes taken over the
window's passage tokens plus the ``[CLS]`` position, so a SQuAD 2.0 model's no-answer score
competes with every span; with ``span_score="null_odds"``, the span's odds against its window's
no-answer position, ``sigmoid(start + end - start[CLS] - end[CLS])`` on the logits, which does
not fall when the model hesitates between overlapping spans ("Rao Quan" or "Rao Quan, the
director"), only when it leans to no answer. Spans are ranked by their score either way.

``backend="onnx-int8"`` runs the same checkpoint exported once to ONNX with int8 per-channel
weights (``embeddings.onnx_export``) in ONNX Runtime instead of PyTorch, one single-threaded run
per window, ``threads`` windows side by side (each unpadded): on two cores that is faster than
one two-threaded batch (bench/onnx_variants.py --reader). ``quantize`` is the PyTorch backend's
int8 dynamic quantisation.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForQuestionAnswering, AutoTokenizer

from qa.settings import Backend, SpanScore
from qa.types import Passage, ReaderOutput, Span


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


class TransformersReader:
    name = "transformers"

    def __init__(
        self,
        model_name_or_path: str,
        *,
        device: str = "cpu",
        max_seq_len: int = 384,
        stride: int = 128,
        max_answer_tokens: int = 30,
        batch_size: int = 16,
        n_best: int = 20,
        quantize: bool = False,
        backend: Backend = "torch",
        cache_dir: Path | None = None,
        threads: int | None = None,
        span_score: SpanScore = "probability",
    ) -> None:
        local = Path(model_name_or_path).exists()
        if backend != "torch" and not local:
            raise ValueError(
                f"reader model {model_name_or_path!r} is not a local folder; the {backend} "
                "backend exports local checkpoints only (set RAGQA_READER_BACKEND=torch)"
            )
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        self.model_name = model_name_or_path
        self.tokenizer = AutoTokenizer.from_pretrained(model_name_or_path, local_files_only=local)
        if not getattr(self.tokenizer, "is_fast", False):
            raise ValueError(f"{model_name_or_path}: a fast tokenizer is needed for span offsets")
        self.backend = backend
        self.session: Any = None
        if backend != "torch":
            self.session = _onnx_session(Path(model_name_or_path), backend, cache_dir, device)
            self._input_names = {i.name for i in self.session.get_inputs()}
            self._pool = ThreadPoolExecutor(
                max(1, threads or torch.get_num_threads()), thread_name_prefix="reader"
            )
        else:
            # float32 on the CPU: checkpoints may be stored in float16 to stay small
            self.model = AutoModelForQuestionAnswering.from_pretrained(
                model_name_or_path,
                local_files_only=local,
                dtype=torch.float32 if device == "cpu" else "auto",
            )
            self.model.eval().to(device)
            if quantize and device == "cpu":
                self.model = _quantize_int8(self.model)
        self.device = device
        self.max_seq_len = min(
            max_seq_len, getattr(self.tokenizer, "model_max_length", max_seq_len)
        )
        self.stride = min(stride, self.max_seq_len // 2)
        self.max_answer_tokens = max_answer_tokens
        self.batch_size = batch_size
        self.n_best = n_best
        self.span_score = span_score

    def _fit_question(self, question: str) -> str:
        """Cut a question to a quarter of the window: a longer one leaves no room for the
        passage (the tokenizer would fail) and says nothing the first words do not."""
        limit = max(8, self.max_seq_len // 4)
        tokens = self.tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
        offsets = tokens["offset_mapping"]
        return question if len(offsets) <= limit else question[: offsets[limit - 1][1]]

    def _logits(self, inputs: dict[str, torch.Tensor], n: int) -> tuple[np.ndarray, np.ndarray]:
        if self.session is not None:
            return self._onnx_logits({k: v.numpy() for k, v in inputs.items()}, n)
        starts, ends = [], []
        with torch.inference_mode():
            for b in range(0, n, self.batch_size):
                batch = {k: v[b : b + self.batch_size].to(self.device) for k, v in inputs.items()}
                out = self.model(**batch)
                starts.append(out.start_logits.float().cpu().numpy())
                ends.append(out.end_logits.float().cpu().numpy())
        return np.concatenate(starts), np.concatenate(ends)

    def _onnx_logits(self, inputs: dict[str, np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
        """One single-threaded run per window, without its padding, on the pool's threads; the
        padding positions get -1e9 (they are never a span: no passage token is there)."""
        if "token_type_ids" in self._input_names and "token_type_ids" not in inputs:
            inputs["token_type_ids"] = np.zeros_like(inputs["input_ids"])
        lengths = inputs["attention_mask"].sum(axis=1)

        def run(row: int) -> list[np.ndarray]:
            cut = int(lengths[row])
            feed = {k: inputs[k][row : row + 1, :cut] for k in self._input_names}
            return self.session.run(None, feed)

        starts = np.full(inputs["input_ids"].shape, -1e9, dtype=np.float32)
        ends = starts.copy()
        for row, (start, end) in enumerate(self._pool.map(run, range(n))):
            starts[row, : start.shape[1]] = start[0]
            ends[row, : end.shape[1]] = end[0]
        return starts, ends

    def read(self, question: str, passages: Sequence[Passage], top_n: int = 5) -> ReaderOutput:
        if not passages:
            return ReaderOutput(spans=[], no_answer_score=1.0)
        question = self._fit_question(question)
        encoded = self.tokenizer(
            [question] * len(passages),
            [p.text for p in passages],
            truncation="only_second",
            max_length=self.max_seq_len,
            stride=self.stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding="longest",
            return_tensors="pt",
        )
        sample_of = encoded.pop("overflow_to_sample_mapping").tolist()
        offsets = encoded.pop("offset_mapping").tolist()
        inputs = {
            k: v
            for k, v in encoded.items()
            if k in ("input_ids", "attention_mask", "token_type_ids")
        }
        start_logits, end_logits = self._logits(inputs, len(sample_of))

        best: dict[tuple[int, int, int], tuple[float, float]] = {}  # (score, probability)
        no_answer = 1.0
        for f, p_idx in enumerate(sample_of):
            seq_ids = encoded.sequence_ids(f)
            context = np.array([s == 1 for s in seq_ids])
            if not context.any():
                continue
            allowed = context.copy()
            allowed[0] = True  # [CLS]: the no-answer position
            s_prob = _softmax(np.where(allowed, start_logits[f], -1e9))
            e_prob = _softmax(np.where(allowed, end_logits[f], -1e9))
            no_answer = min(no_answer, float(s_prob[0] * e_prob[0]))
            ctx_idx = np.flatnonzero(context)
            top_s = ctx_idx[np.argsort(-s_prob[ctx_idx])[: self.n_best]]
            top_e = ctx_idx[np.argsort(-e_prob[ctx_idx])[: self.n_best]]
            # every (start, end) pair of the n best starts and ends, scored at once
            length = top_e[None, :] - top_s[:, None] + 1
            valid = (length >= 1) & (length <= self.max_answer_tokens)
            probability = s_prob[top_s][:, None] * e_prob[top_e][None, :]
            score = probability
            if self.span_score == "null_odds":
                margin = start_logits[f][top_s][:, None] + end_logits[f][top_e][None, :]
                margin -= start_logits[f][0] + end_logits[f][0]
                score = 1.0 / (1.0 + np.exp(-np.clip(margin, -50.0, 50.0)))
            for i, j in zip(*np.nonzero(valid), strict=True):
                char_start, char_end = offsets[f][top_s[i]][0], offsets[f][top_e[j]][1]
                if char_end <= char_start:
                    continue
                key, pair_score = (p_idx, char_start, char_end), float(score[i, j])
                if pair_score > best.get(key, (-1.0, 0.0))[0]:
                    best[key] = (pair_score, float(probability[i, j]))
        spans = [
            Span(p, s, e, passages[p].text[s:e], score, probability)
            for (p, s, e), (score, probability) in sorted(best.items(), key=lambda kv: -kv[1][0])
        ]
        return ReaderOutput(spans=_dedupe(spans)[:top_n], no_answer_score=no_answer)


def _onnx_session(model_path: Path, backend: str, cache_dir: Path | None, device: str) -> Any:
    """A single-threaded session (the reader runs windows side by side) of the exported model."""
    from embeddings.encoder import DEFAULT_CACHE_DIR
    from embeddings.onnx_export import ensure_onnx_model, session

    variant = "onnx-int8" if backend == "onnx-int8" else "onnx"
    path = ensure_onnx_model(model_path, cache_dir or DEFAULT_CACHE_DIR, variant, head="qa")
    return session(path, threads=1, device=device)


def _quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """int8 dynamic quantisation of the linear layers: about twice as fast on a laptop CPU."""
    import warnings

    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def _dedupe(spans: list[Span]) -> list[Span]:
    """Drop whitespace-only spans and trim surrounding whitespace; keep the best per text+place."""
    seen: set[tuple[int, int, int]] = set()
    out: list[Span] = []
    for span in spans:
        stripped = span.text.strip()
        if not stripped:
            continue
        lead = len(span.text) - len(span.text.lstrip())
        start = span.start + lead
        end = start + len(stripped)
        key = (span.passage_index, start, end)
        if key in seen:
            continue
        seen.add(key)
        out.append(Span(span.passage_index, start, end, stripped, span.score, span.probability))
    return out
