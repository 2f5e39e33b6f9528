"""How much the retrieval order should count when answers from different passages compete.

    python bench/answer_ranking.py --index-dir /tmp/bbc-index   # held-out BBC questions
    python bench/answer_ranking.py --index-dir I --gold eval/gold/seeds.jsonl
    python bench/answer_ranking.py --quick                      # 12 questions, a smoke run

The pipeline ranks a span by the log-odds of its reader score less ``weight * ln(1 + rank)``
of its passage (``qa.pipeline.rank_key``; the setting ``passage_rank_weight``). Each question is
retrieved and read once, as ``/ask`` does (``top_k`` passages, the reader's 20 best spans); then
every weight picks its answer from the same spans with the pipeline's own ``merge_spans`` and
``select_answer``, at the service's no-answer threshold and always answering; the table counts
the questions whose F1 each weight raises or lowers against weight 0 (at the threshold).

Without ``--gold`` the questions are the answerable held-out part of the project's hand-written
BBC questions (``qa.reader_data``: never trained on), asked of an index of the whole BBC corpus
(``../shared/data/bbc``), which is built at ``--index-dir`` when that holds no index (about
3 minutes on 2 cores). The weight is chosen there, not on the seeds.
Writes ``bench/results/answer_ranking[_NAME].md`` and ``.png``.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from _common import BBC, RESULTS, machine_line, markdown_table, write_result
from tqdm import tqdm

from eval.metrics import score_prediction
from qa.pipeline import QAPipeline, merge_spans, select_answer
from qa.settings import Settings
from qa.types import Span

DEFAULT_WEIGHTS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0)


@dataclass(frozen=True, slots=True)
class Question:
    question: str
    answers: tuple[str, ...]  # empty: unanswerable
    article: str | None = None  # BBC: the article it was written about, e.g. "tech/001.txt"


def held_out_bbc_questions(limit: int | None, seed: int = 0) -> list[Question]:
    """The answerable held-out hand-written BBC questions, in a seeded random order."""
    from qa.reader_data import is_held_out, load_examples

    examples = [e for e in load_examples(BBC) if e.answerable and is_held_out(e.split_key)]
    random.Random(seed).shuffle(examples)
    questions = [Question(e.question, tuple(a for _, a in e.answers), e.article) for e in examples]
    return questions[:limit] if limit else questions


def gold_questions(path: Path, limit: int | None) -> list[Question]:
    from eval.gold import load_gold_jsonl

    questions = [Question(g.question, tuple(g.answers)) for g in load_gold_jsonl(path)]
    return questions[:limit] if limit else questions


def has_index(settings: Settings) -> bool:
    from qa.store import IndexNotFoundError, IndexStore

    try:
        IndexStore(settings.index_dir).current_name()
    except IndexNotFoundError:
        return False
    return True


def ensure_index(settings: Settings, articles: Sequence[Path]) -> None:
    """Build the index at ``settings.index_dir`` from ``articles`` unless one is there."""
    from embeddings import Embedder
    from qa.ingest import Ingestor

    if has_index(settings):
        return
    print(f"building the index at {settings.index_dir} from {len(articles)} articles")
    Ingestor(settings, Embedder.from_settings(settings)).ingest(list(articles), rebuild=True)


def read_all(pipeline: QAPipeline, questions: Sequence[Question]) -> list[list[Span]]:
    """Each question's spans from its ``top_k`` retrieved passages (passage_index = rank)."""
    spans = []
    for q in tqdm(questions, desc="Reading", unit="q"):
        passages, _ = pipeline.retrieve(q.question)
        spans.append(pipeline.reader.read(q.question, passages, top_n=20).spans)
    return spans


def predict(
    questions: Sequence[Question], spans: Sequence[Sequence[Span]], weight: float, threshold: float
) -> list[tuple[float, float, bool]]:
    """(EM, F1, answered) per question, as the pipeline would answer with this weight."""
    out = []
    for q, found in zip(questions, spans, strict=True):
        best = select_answer(merge_spans(found, weight), threshold)
        prediction = best.text if best is not None else None
        out.append((*score_prediction(prediction, q.answers), prediction is not None))
    return out


def summarise(
    scored: Sequence[tuple[float, float, bool]], baseline: Sequence[tuple[float, float, bool]]
) -> dict[str, float]:
    n = max(1, len(scored))
    pairs = list(zip(scored, baseline, strict=True))
    return {
        "em": 100 * sum(s[0] for s in scored) / n,
        "f1": 100 * sum(s[1] for s in scored) / n,
        "answered": 100 * sum(s[2] for s in scored) / n,
        "better": sum(s[1] > b[1] for s, b in pairs),
        "worse": sum(s[1] < b[1] for s, b in pairs),
    }


def plot(rows: Sequence[dict[str, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    weights = [r["weight"] for r in rows]
    ax.plot(weights, [r["f1"] for r in rows], marker="o", label="F1 at the service threshold")
    always = [r["f1_always"] for r in rows]
    ax.plot(weights, always, marker="s", ls="--", label="F1 always answering")
    ax.set_xlabel("passage_rank_weight")
    ax.set_ylabel("F1")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--index-dir", type=Path, help="index to ask (BBC: built here if absent)")
    ap.add_argument("--gold", type=Path, help="a gold JSONL file instead of the BBC questions")
    ap.add_argument("--limit", type=int, help="at most this many questions")
    ap.add_argument("--weights", default=",".join(str(w) for w in DEFAULT_WEIGHTS))
    ap.add_argument("--quick", action="store_true", help="12 BBC questions on a small index")
    ap.add_argument("--name", default="", help="suffix of the results files")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    weights = [float(w) for w in args.weights.split(",")]

    with tempfile.TemporaryDirectory() as tmp:
        index_dir = args.index_dir or Path(tmp) / "index"
        settings = Settings(index_dir=index_dir)
        if args.gold:
            questions = gold_questions(args.gold, args.limit)
            source = f"{args.gold.name} ({len(questions)} questions)"
            if not has_index(settings):
                raise SystemExit(f"{index_dir}: no index; build it with `ragqa ingest`")
        else:
            questions = held_out_bbc_questions(12 if args.quick else args.limit)
            articles = sorted(BBC.rglob("*.txt"))
            if args.quick:
                wanted = {q.article for q in questions}
                articles = [a for a in articles if f"{a.parent.name}/{a.name}" in wanted]
            ensure_index(settings, articles)
            source = f"held-out BBC questions ({len(questions)}, all answerable)"
        pipeline = QAPipeline(settings)
        t0 = time.perf_counter()
        spans = read_all(pipeline, questions)
        read_s = time.perf_counter() - t0
    threshold = settings.answer_threshold
    rows = []
    baseline = predict(questions, spans, 0.0, threshold)
    for w in weights:
        at = summarise(predict(questions, spans, w, threshold), baseline)
        always = summarise(predict(questions, spans, w, 0.0), baseline)
        rows.append({"weight": w, **at, "f1_always": always["f1"], "em_always": always["em"]})

    name = "answer_ranking" + ("_quick" if args.quick else "")
    name += f"_{args.name}" if args.name else ""
    header = ["passage_rank_weight", "EM", "F1", "answered %", "F1 better / worse than 0"]
    table = markdown_table(
        [*header, "EM always", "F1 always"],
        [
            [
                *(r["weight"], r["em"], r["f1"], r["answered"]),
                f"{r['better']} / {r['worse']}",
                *(r["em_always"], r["f1_always"]),
            ]
            for r in rows
        ],
    )
    given = [f"--index-dir {args.index_dir}" if args.index_dir else ""]
    given += [f"--gold {args.gold}" if args.gold else "", "--quick" if args.quick else ""]
    given += [f"--limit {args.limit}" if args.limit else "", f"--weights {args.weights}"]
    cmd = " ".join(["python bench/answer_ranking.py", *filter(None, given)])
    reader = settings.reader
    if reader == "transformers":
        reader += f" ({settings.reader_backend}, {settings.reader_span_score})"
    body = (
        f"{source}; index {index_dir}; top_k {settings.top_k}; reader {reader}; no-answer "
        f"threshold {threshold}; reading took {read_s:.0f} s.\n\n{table}\n\n`{cmd}`  \n"
        f"{machine_line()}\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    plot(rows, args.out / f"{name}.png", source)
    path = write_result(name, "Answer ranking: reader score and passage rank", body, args.out)
    print(table)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
