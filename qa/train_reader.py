"""Fine-tune a small encoder for extractive QA on the project's own questions.

``ragqa train-reader`` (or ``python -m qa.train_reader``) starts from the packaged
all-MiniLM-L6-v2 encoder, adds a span head (``AutoModelForQuestionAnswering``) and trains it
SQuAD 2.0 style on the project's own questions (``qa.reader_data``): hand-written questions about
BBC articles in ``qa/reader_data/handwritten`` (answers by offsets into ``../shared/data/bbc``)
and passages written for the project with their questions in ``qa/reader_data/written``;
unanswerable questions point at ``[CLS]``. About 10% of the articles (by title) are held out
and scored with the same reader code the service runs. The result is a normal transformers
checkpoint (safetensors, float16 to keep it small) that
``RAGQA_READER=transformers RAGQA_READER_MODEL=DIR`` loads like any hub model.

Seeds are fixed; it runs on the CPU (two cores: tens of minutes) and uses CUDA when present.
SQuAD files are never read here: they are for measuring only.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import get_args

import numpy as np
import torch
from tqdm import tqdm

from qa.reader_data import (
    DEFAULT_BBC_DIR,
    QAExample,
    balance_year_questions,
    is_held_out,
    load_all_examples,
)
from qa.settings import SpanScore
from qa.train_config import DEFAULT_TRAIN_CONFIG, TrainConfig

log = logging.getLogger(__name__)

DEFAULT_OUTPUT = Path(__file__).with_name("reader_model")


@dataclass(slots=True)
class Feature:
    input_ids: list[int]
    token_type_ids: list[int]
    start: int
    end: int


def _resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def featurize(examples: Sequence[QAExample], tokenizer, cfg: TrainConfig) -> list[Feature]:
    """Windows of question + context, labelled with the answer's tokens or ``[CLS]`` (0)."""
    enc = tokenizer(
        [e.question for e in examples],
        [e.context for e in examples],
        truncation="only_second",
        max_length=cfg.max_seq_len,
        stride=cfg.stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    features: list[Feature] = []
    for f, ex_idx in enumerate(enc["overflow_to_sample_mapping"]):
        ex = examples[ex_idx]
        seq = enc.sequence_ids(f)
        offsets = enc["offset_mapping"][f]
        ctx = [i for i, s in enumerate(seq) if s == 1]
        start_tok = end_tok = 0
        if ex.answers and ctx:
            a_start, a_text = ex.answers[0]
            a_end = a_start + len(a_text)
            if offsets[ctx[0]][0] <= a_start and offsets[ctx[-1]][1] >= a_end:
                start_tok = next(i for i in ctx if offsets[i][1] > a_start)
                end_tok = next(i for i in reversed(ctx) if offsets[i][0] < a_end)
        features.append(
            Feature(
                input_ids=enc["input_ids"][f],
                token_type_ids=enc["token_type_ids"][f],
                start=start_tok,
                end=end_tok,
            )
        )
    return features


def _batches(features: list[Feature], size: int, rng: random.Random) -> list[list[Feature]]:
    """Batches of similar length (less padding), in random order."""
    order = sorted(range(len(features)), key=lambda i: (len(features[i].input_ids), rng.random()))
    batches = [[features[i] for i in order[b : b + size]] for b in range(0, len(order), size)]
    rng.shuffle(batches)
    return batches


def _collate(batch: list[Feature], pad_id: int, device: str) -> dict[str, torch.Tensor]:
    width = max(len(f.input_ids) for f in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    types = torch.zeros((len(batch), width), dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, f in enumerate(batch):
        n = len(f.input_ids)
        ids[i, :n] = torch.tensor(f.input_ids)
        types[i, :n] = torch.tensor(f.token_type_ids)
        mask[i, :n] = 1
    return {
        "input_ids": ids.to(device),
        "token_type_ids": types.to(device),
        "attention_mask": mask.to(device),
        "start_positions": torch.tensor([f.start for f in batch], device=device),
        "end_positions": torch.tensor([f.end for f in batch], device=device),
    }


# one read question: answerable, the reader's best span (or None), its score, the gold answers
_ReadRow = tuple[bool, str | None, float, list[str]]


def _read_examples(
    model_dir: Path, examples: Sequence[QAExample], span_score: SpanScore = "probability"
) -> list[_ReadRow]:
    """Read each example's passage with the service's own transformers reader, in order."""
    from qa.readers.transformers_reader import TransformersReader
    from qa.types import Passage

    reader = TransformersReader(str(model_dir), span_score=span_score)
    rows: list[_ReadRow] = []
    for ex in tqdm(examples, desc="Scoring held-out", unit="q"):
        passage = Passage("p:0", "p", "", "", 0, len(ex.context), ex.context, 1.0)
        out = reader.read(ex.question, [passage], top_n=1)
        best = out.spans[0] if out.spans else None
        rows.append(
            (
                ex.answerable,
                best.text if best else None,
                best.score if best else 0.0,
                [a for _, a in ex.answers],
            )
        )
    return rows


def _score_rows(rows: Sequence[_ReadRow]) -> dict[str, float]:
    """Score rows read by :func:`_read_examples`.

    Returns EM/F1 in percent at the best no-answer margin and at margin 0, plus the has-answer
    and no-answer parts; ``threshold`` is the span-score cut that maximised F1.
    """
    from eval.metrics import score_prediction

    def at(threshold: float) -> dict[str, float]:
        em = f1 = has_f1 = no_acc = 0.0
        n_has = sum(r[0] for r in rows)
        for answerable, text, score, gold in rows:
            pred = text if score >= threshold else None
            e, f = score_prediction(pred, gold)
            em, f1 = em + e, f1 + f
            if answerable:
                has_f1 += f
            else:
                no_acc += pred is None
        n = max(len(rows), 1)
        return {
            "threshold": threshold,
            "em": 100 * em / n,
            "f1": 100 * f1 / n,
            "has_ans_f1": 100 * has_f1 / max(n_has, 1),
            "no_ans_accuracy": 100 * no_acc / max(len(rows) - n_has, 1),
        }

    sweep = [at(t) for t in np.linspace(0.0, 0.99, 100)]
    best = max(sweep, key=lambda r: r["f1"])
    return {
        "n": len(rows),
        **{f"best_{k}": v for k, v in best.items()},
        **{f"always_{k}": v for k, v in at(0.0).items() if k != "threshold"},
    }


def evaluate_held_out(
    model_dir: Path, dev_ex: Sequence[QAExample], span_score: SpanScore = "probability"
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Figures on the held-out questions, in all and by source (BBC, written).

    Each question is read once; the figures by source are scored from the same reads.
    """
    rows = _read_examples(model_dir, dev_ex, span_score) if dev_ex else []
    held_out = _score_rows(rows) if rows else {}
    by_source = {
        source: _score_rows(part)
        for source in sorted({e.source for e in dev_ex})
        if len(part := [r for r, e in zip(rows, dev_ex, strict=True) if e.source == source])
        < len(dev_ex)
    }
    return (
        {k: round(v, 3) for k, v in held_out.items()},
        {src: {k: round(v, 3) for k, v in fig.items()} for src, fig in by_source.items()},
    )


def train(
    output_dir: Path = DEFAULT_OUTPUT,
    cfg: TrainConfig = DEFAULT_TRAIN_CONFIG,
    bbc_dir: Path = DEFAULT_BBC_DIR,
    progress: bool = True,
    examples: Sequence[QAExample] | None = None,
) -> dict[str, object]:
    """Train, save the checkpoint to ``output_dir`` and return its figures.

    ``examples`` (default: all of ``qa.reader_data``, :func:`load_all_examples`) are split into
    training and held-out parts by article.
    """
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from embeddings import resolve_model_path

    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    device = _resolve_device(cfg.device)
    if device == "cpu":
        torch.set_num_threads(max(1, torch.get_num_threads()))

    examples = load_all_examples(bbc_dir) if examples is None else examples
    train_ex = [e for e in examples if not is_held_out(e.split_key, cfg.held_out_percent)]
    dev_ex = [e for e in examples if is_held_out(e.split_key, cfg.held_out_percent)]
    if cfg.balance_years:
        train_ex = balance_year_questions(train_ex)
    log.info("%d training questions, %d held out", len(train_ex), len(dev_ex))

    base = resolve_model_path(cfg.base_model)
    tokenizer = AutoTokenizer.from_pretrained(base)
    # float32 whatever the base holds (a shipped checkpoint is float16)
    model = AutoModelForQuestionAnswering.from_pretrained(base).float().to(device)
    features = featurize(train_ex, tokenizer, cfg)

    rng = random.Random(cfg.seed)
    steps_per_epoch = math.ceil(len(features) / cfg.batch_size)
    total = max(1, int(steps_per_epoch * cfg.epochs))
    no_decay = ("bias", "LayerNorm.weight")
    groups = [
        {
            "params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
            "weight_decay": cfg.weight_decay,
        },
        {
            "params": [p for n, p in model.named_parameters() if n.endswith(no_decay)],
            "weight_decay": 0.0,
        },
    ]
    optimizer = torch.optim.AdamW(groups, lr=cfg.learning_rate)
    warmup = int(total * cfg.warmup)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (
            (s + 1) / max(1, warmup) if s < warmup else max(0.0, (total - s) / (total - warmup))
        ),
    )

    model.train()
    t0 = time.perf_counter()
    step, losses = 0, []
    bar = tqdm(total=total, desc="Training reader", unit="step", disable=not progress)
    while step < total:
        for batch in _batches(features, cfg.batch_size, rng):
            if step >= total:
                break
            loss = model(**_collate(batch, tokenizer.pad_token_id, device)).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
    bar.close()
    train_seconds = time.perf_counter() - t0

    output_dir.mkdir(parents=True, exist_ok=True)
    model.eval().to("cpu").half()
    model.save_pretrained(output_dir, safe_serialization=True)
    tokenizer.save_pretrained(output_dir)
    held_out, by_source = evaluate_held_out(output_dir, dev_ex)
    figures: dict[str, object] = {
        "config": asdict(cfg),
        "device": device,
        "train_questions": len(train_ex),
        "train_windows": len(features),
        "held_out_questions": len(dev_ex),
        "steps": step,
        "train_seconds": round(train_seconds, 1),
        "final_loss": round(float(np.mean(losses[-50:])), 4) if losses else None,
        "held_out": held_out,
        "held_out_by_source": by_source,
    }
    (output_dir / "training.json").write_text(json.dumps(figures, indent=2) + "\n", "utf-8")
    return figures


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--bbc-dir", type=Path, default=DEFAULT_BBC_DIR)
    for name, value in asdict(DEFAULT_TRAIN_CONFIG).items():
        flag = f"--{name.replace('_', '-')}"
        if isinstance(value, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=value)
        else:
            parser.add_argument(flag, type=type(value), default=value)
    parser.add_argument(
        "--evaluate",
        type=Path,
        default=None,
        metavar="MODEL_DIR",
        help="train nothing: score MODEL_DIR on the held-out questions and print the figures",
    )
    parser.add_argument("--span-score", choices=get_args(SpanScore), default="probability")
    args = vars(parser.parse_args(argv))
    out, bbc = args.pop("out"), args.pop("bbc_dir")
    evaluate, span_score = args.pop("evaluate"), args.pop("span_score")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if evaluate is not None:
        cfg = TrainConfig(**args)
        examples = load_all_examples(bbc)
        dev_ex = [e for e in examples if is_held_out(e.split_key, cfg.held_out_percent)]
        held_out, by_source = evaluate_held_out(evaluate, dev_ex, span_score)
        print(
            json.dumps(
                {
                    "model": str(evaluate),
                    "span_score": span_score,
                    "held_out": held_out,
                    "held_out_by_source": by_source,
                },
                indent=2,
            )
        )
        return
    figures = train(out, TrainConfig(**args), bbc)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
