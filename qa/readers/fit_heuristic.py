"""Fit the heuristic reader's candidate-scoring weights on the project's own training data.

Training data: the hand-written questions in ``qa/reader_data/handwritten/*.jsonl``, which point
into the BBC articles of ``../shared/data/bbc`` by file and character offsets (never SQuAD).
Every candidate span the reader proposes for a question is labelled 1 when its normalised text
equals a gold answer, else 0 (all 0 for unanswerable questions), and an L2-regularised logistic
regression is fitted on the candidates' features. Articles are split 80/20 (by a hash of the
file name) into fit and held-out parts; the held-out figures are printed.

    python -m qa.readers.fit_heuristic [--bbc-dir ../shared/data/bbc] [--out PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from embeddings import Embedder
from qa.normalize import normalize_answer
from qa.readers.heuristic import FEATURES, WEIGHTS_FILE, CandidateScorer, HeuristicReader
from qa.types import Passage

DATA_DIR = Path(__file__).resolve().parents[1] / "reader_data" / "handwritten"
DEFAULT_BBC = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "bbc"


@dataclass(frozen=True, slots=True)
class Example:
    qid: str
    article: str
    question: str
    context: str
    title: str
    answers: tuple[str, ...]


Row = tuple[Example, list[str], np.ndarray, np.ndarray]


def load_examples(data_dir: Path, bbc_dir: Path) -> Iterator[Example]:
    texts: dict[str, str] = {}
    for path in sorted(data_dir.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            article = row["article"]
            if article not in texts:
                texts[article] = (bbc_dir / article).read_text(encoding="utf-8")
            text = texts[article]
            yield Example(
                qid=row["id"],
                article=article,
                question=row["question"],
                context=text[row["context_start"] : row["context_end"]],
                title=text.split("\n", 1)[0].strip(),
                answers=tuple(a["text"] for a in row["answers"]),
            )


def is_held_out(article: str) -> bool:
    return int(hashlib.sha256(article.encode()).hexdigest(), 16) % 5 == 0


def featurise(reader: HeuristicReader, ex: Example) -> tuple[list[str], np.ndarray, np.ndarray]:
    passage = Passage("c", "d", ex.title, "", 0, len(ex.context), ex.context, 1.0)
    keys, x = reader.candidate_features(ex.question, [passage])
    texts = [ex.context[s:e] for _, s, e in keys]
    gold = {normalize_answer(a) for a in ex.answers}
    y = np.array([1.0 if normalize_answer(t) in gold else 0.0 for t in texts])
    return texts, x, y


def fit_scorer(
    x: np.ndarray,
    y: np.ndarray,
    hidden: int = 0,
    l2: float = 1e-4,
    steps: int = 2000,
    seed: int = 0,
) -> CandidateScorer:
    """Full-batch Adam on the mean log loss; ``hidden`` > 0 adds a tanh layer of that width."""
    rng = np.random.default_rng(seed)
    mean, std = x.mean(0), x.std(0) + 1e-6
    xs = (x - mean) / std
    n_in = x.shape[1]
    params = {"w2": np.zeros(hidden or n_in), "b2": np.zeros(1)}
    if hidden:
        params["w1"] = rng.normal(0, 1 / np.sqrt(n_in), (n_in, hidden))
        params["b1"] = np.zeros(hidden)
        params["w2"] = rng.normal(0, 1 / np.sqrt(hidden), hidden)
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(p) for k, p in params.items()}
    lr, beta1, beta2 = 0.02, 0.9, 0.999
    for t in range(1, steps + 1):
        h = np.tanh(xs @ params["w1"] + params["b1"]) if hidden else xs
        p = 1.0 / (1.0 + np.exp(-np.clip(h @ params["w2"] + params["b2"][0], -30, 30)))
        g_out = (p - y) / len(y)
        grads = {"w2": h.T @ g_out + l2 * params["w2"], "b2": np.array([g_out.sum()])}
        if hidden:
            g_h = np.outer(g_out, params["w2"]) * (1 - h**2)
            grads["w1"] = xs.T @ g_h + l2 * params["w1"]
            grads["b1"] = g_h.sum(0)
        for k, g in grads.items():
            m[k] = beta1 * m[k] + (1 - beta1) * g
            v[k] = beta2 * v[k] + (1 - beta2) * g**2
            params[k] -= lr * (m[k] / (1 - beta1**t)) / (np.sqrt(v[k] / (1 - beta2**t)) + 1e-8)
    return CandidateScorer(
        mean, std, params.get("w1"), params.get("b1"), params["w2"], float(params["b2"][0])
    )


def evaluate(
    model: CandidateScorer,
    rows: list[tuple[Example, list[str], np.ndarray, np.ndarray]],
    threshold: float = 0.5,
) -> dict[str, float]:
    answerable = [r for r in rows if r[0].answers]
    top1 = 0
    for _, _, x, y in answerable:
        if len(y) and y[int(np.argmax(model.score(x)))] == 1:
            top1 += 1

    def abstains(x: np.ndarray) -> bool:
        return not len(x) or float(model.score(x).max()) < threshold

    no_ans = [r for r in rows if not r[0].answers]
    abstained = sum(1 for r in rows if abstains(r[2]))
    no_ans_abstained = sum(1 for r in no_ans if abstains(r[2]))
    return {
        "questions": len(rows),
        "top1_exact_on_answerable": 100.0 * top1 / max(1, len(answerable)),
        "no_answer_abstained": 100.0 * no_ans_abstained / max(1, len(no_ans)),
        "abstained_overall": 100.0 * abstained / max(1, len(rows)),
    }


def _featurised(args: argparse.Namespace) -> list[Row]:
    """Candidates and features of every example, cached in ``--cache`` between runs."""
    examples = list(load_examples(args.data_dir, args.bbc_dir))
    key = hashlib.sha256(
        json.dumps([FEATURES, [e.qid for e in examples]]).encode()
        + inspect.getsource(HeuristicReader).encode()
        + (Path(__file__).parent / "question.py").read_bytes()
    ).hexdigest()[:16]
    cache = args.cache / f"features-{key}.npz" if args.cache else None
    if cache is not None and cache.is_file():
        data = np.load(cache, allow_pickle=False)
        xs, ys = data["x"], data["y"]
        bounds = np.r_[0, np.cumsum(data["n"])]
        return [
            (ex, [], xs[a:b], ys[a:b])
            for ex, a, b in zip(examples, bounds, bounds[1:], strict=False)
        ]
    embedder = Embedder("all-MiniLM-L6-v2")
    reader = HeuristicReader(encode=embedder.encode, model=CandidateScorer.default())
    rows: list[Row] = []
    for ex in tqdm(examples, desc="Candidates", unit="q"):
        texts, x, y = featurise(reader, ex)
        rows.append((ex, texts, x.reshape(-1, len(FEATURES)), y))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            cache,
            x=np.vstack([r[2] for r in rows]),
            y=np.concatenate([r[3] for r in rows]),
            n=np.array([len(r[3]) for r in rows]),
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--bbc-dir", type=Path, default=DEFAULT_BBC)
    parser.add_argument("--out", type=Path, default=WEIGHTS_FILE)
    parser.add_argument("--cache", type=Path, default=None, help="Folder to cache features in.")
    args = parser.parse_args()

    rows = _featurised(args)
    fit_rows = [r for r in rows if not is_held_out(r[0].article)]
    held = [r for r in rows if is_held_out(r[0].article)]
    usable = [r for r in fit_rows if len(r[2])]
    x = np.vstack([r[2] for r in usable])
    y = np.concatenate([r[3] for r in usable])
    # choose the model shape on a validation part of the fit articles (not the held-out part)
    val_mask = np.array(
        [int(hashlib.sha256(r[0].article.encode()).hexdigest(), 16) % 7 == 0 for r in usable]
    )
    row_val = np.repeat(val_mask, [len(r[3]) for r in usable])
    val_rows = [r for r, is_val in zip(usable, val_mask, strict=True) if is_val]
    tried = {}
    for hidden in (0, 8, 16, 32):
        m = fit_scorer(x[~row_val], y[~row_val], hidden=hidden)
        tried[hidden] = evaluate(m, val_rows)
    hidden = max(tried, key=lambda k: tried[k]["top1_exact_on_answerable"])
    model = fit_scorer(x, y, hidden=hidden)
    report = {
        "hidden_units": hidden,
        "validation_by_hidden_units": {str(k): v for k, v in tried.items()},
        "fit": evaluate(model, fit_rows),
        "held_out": evaluate(model, held),
        "held_out_hand_set_weights": evaluate(CandidateScorer.default(), held),
        "candidates": len(y),
        "positives": int(y.sum()),
        "gold_reachable_pct": 100.0
        * sum(1 for r in rows if r[0].answers and r[3].any())
        / max(1, sum(1 for r in rows if r[0].answers)),
    }
    args.out.write_text(
        json.dumps(
            {
                "features": list(FEATURES),
                "model": model.to_dict(),
                "trained_on": sorted(p.name for p in args.data_dir.glob("*.jsonl")),
                "report": report,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    print(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
