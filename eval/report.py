"""Write an evaluation's report folder: metrics.json, predictions.jsonl, report.md/.html, plots."""

from __future__ import annotations

import html
import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import itertools

import matplotlib.pyplot as plt
import numpy as np

from eval.runner import Prediction

TYPES = ("who", "when", "where", "how many", "what", "other")
METRIC_ROWS = [
    ("n", "questions", "{:.0f}"),
    ("n_has_answer", "answerable", "{:.0f}"),
    ("n_no_answer", "unanswerable", "{:.0f}"),
    ("em", "EM", "{:.1f}"),
    ("f1", "F1", "{:.1f}"),
    ("has_ans_em", "has-answer EM", "{:.1f}"),
    ("has_ans_f1", "has-answer F1", "{:.1f}"),
    ("no_ans_accuracy", "no-answer accuracy (abstained)", "{:.1f}"),
    ("answered_share", "answered (%)", "{:.1f}"),
    ("recall_at_1", "recall@1", "{:.1f}"),
    ("recall_at_3", "recall@3", "{:.1f}"),
    ("recall_at_5", "recall@5", "{:.1f}"),
    ("recall_at_10", "recall@10", "{:.1f}"),
    ("mrr", "MRR", "{:.3f}"),
    ("citation_accuracy", "citation accuracy", "{:.1f}"),
    ("latency_ms_p50", "latency p50 (ms)", "{:.1f}"),
    ("latency_ms_p95", "latency p95 (ms)", "{:.1f}"),
]


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return lines


def _by_type(predictions: Sequence[Prediction]) -> dict[str, tuple[int, float, float]]:
    groups: dict[str, list[Prediction]] = defaultdict(list)
    for p in predictions:
        groups[p.qtype].append(p)
    return {
        t: (
            len(g),
            100 * float(np.mean([p.em for p in g])),
            100 * float(np.mean([p.f1 for p in g])),
        )
        for t in TYPES
        if (g := groups.get(t))
    }


def _worst(predictions: Sequence[Prediction], n: int = 15) -> list[Prediction]:
    """Misses first: wrong answers to answerable questions, confident answers to unanswerable."""
    misses = [p for p in predictions if p.f1 < 1.0]
    return sorted(misses, key=lambda p: (p.f1, -p.score))[:n]


def _plot_by_type(by_type: dict[str, tuple[int, float, float]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.2))
    names = list(by_type)
    ax.bar(names, [by_type[t][2] for t in names], color="#3b6fb6")
    for i, t in enumerate(names):
        ax.text(i, by_type[t][2] + 1, f"n={by_type[t][0]}", ha="center", fontsize=8)
    ax.set_ylabel("F1")
    ax.set_ylim(0, 105)
    ax.set_title("F1 by question type")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_calibration(predictions: Sequence[Prediction], path: Path) -> None:
    """Is the best candidate right as often as its score says? (answerable questions)"""
    scored = [(p.best_score, p.gold, p.best_candidate) for p in predictions if p.gold]
    fig, ax = plt.subplots(figsize=(4.2, 4))
    if scored:
        from eval.metrics import score_prediction

        scores = np.array([s for s, _, _ in scored])
        correct = np.array([score_prediction(c, g)[0] if c else 0.0 for _, g, c in scored])
        edges = np.linspace(0, 1, 11)
        xs, ys, ns = [], [], []
        for lo, hi in itertools.pairwise(edges):
            mask = (scores >= lo) & (scores < hi if hi < 1 else scores <= hi)
            if mask.any():
                xs.append(float(scores[mask].mean()))
                ys.append(float(correct[mask].mean()))
                ns.append(int(mask.sum()))
        ax.plot([0, 1], [0, 1], ls="--", color="#999", label="perfect calibration")
        ax.plot(xs, ys, marker="o", color="#c0392b", label="best candidate")
        for x, y, n in zip(xs, ys, ns, strict=True):
            ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set_xlabel("answer score")
    ax.set_ylabel("exact match rate")
    ax.set_title("Score calibration")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_tradeoff(sweep: Sequence[dict[str, float]], chosen: float, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.4))
    t = [r["threshold"] for r in sweep]
    ax.plot(t, [r["f1"] for r in sweep], label="F1 (all)", color="#3b6fb6")
    ax.plot(t, [r["has_ans_f1"] for r in sweep], label="has-answer F1", color="#27ae60")
    ax.plot(t, [r["no_ans_accuracy"] for r in sweep], label="no-answer accuracy", color="#c0392b")
    ax.axvline(chosen, ls="--", color="#333")
    ax.text(chosen, 2, f" threshold {chosen:.2f}", fontsize=8)
    ax.set_xlabel("no-answer threshold")
    ax.set_ylabel("%")
    ax.set_ylim(0, 105)
    ax.set_title("Abstention trade-off")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_latency(predictions: Sequence[Prediction], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.hist([p.latency_ms for p in predictions], bins=40, color="#7f8c8d")
    ax.set_xlabel("latency per question (ms)")
    ax.set_ylabel("questions")
    ax.set_title("Latency")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(
    out: Path,
    predictions: Sequence[Prediction],
    metrics: dict[str, Any],
    sweep: Sequence[dict[str, float]],
    config: dict[str, Any],
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    with (out / "predictions.jsonl").open("w", encoding="utf-8") as fh:
        for p in predictions:
            fh.write(json.dumps(p.to_dict(), ensure_ascii=False) + "\n")
    by_type = _by_type(predictions)
    chosen = float(config.get("no_answer_threshold", 0.0))
    _plot_by_type(by_type, out / "f1_by_type.png")
    _plot_calibration(predictions, out / "calibration.png")
    _plot_tradeoff(sweep, chosen, out / "abstention.png")
    _plot_latency(predictions, out / "latency.png")

    sections: list[tuple[str, list[str], list[list[str]]]] = [
        ("Configuration", ["setting", "value"], [[k, str(v)] for k, v in config.items()]),
        (
            "Metrics",
            ["metric", "value"],
            [
                [label, fmt.format(metrics[key])]
                for key, label, fmt in METRIC_ROWS
                if key in metrics
            ],
        ),
        (
            "By question type",
            ["type", "n", "EM", "F1"],
            [[t, str(n), f"{em:.1f}", f"{f1:.1f}"] for t, (n, em, f1) in by_type.items()],
        ),
    ]
    best = max(sweep, key=lambda r: r["f1"]) if sweep else None
    if best is not None:
        sections.append(
            (
                "Abstention",
                ["", "threshold", "F1", "has-answer F1", "no-answer accuracy"],
                [
                    ["in use", f"{chosen:.2f}", *(f"{v:.1f}" for v in _at(sweep, chosen))],
                    [
                        "best on this set",
                        f"{best['threshold']:.2f}",
                        f"{best['f1']:.1f}",
                        f"{best['has_ans_f1']:.1f}",
                        f"{best['no_ans_accuracy']:.1f}",
                    ],
                ],
            )
        )
    worst_rows = [
        [
            p.question,
            " / ".join(p.gold) if p.gold else "(unanswerable)",
            p.prediction if p.prediction is not None else "(abstained)",
            f"{p.score:.2f}",
            "; ".join(dict.fromkeys(x["title"] for x in p.passages[:3])),
        ]
        for p in _worst(predictions)
    ]
    sections.append(
        ("Worst misses", ["question", "gold", "prediction", "score", "retrieved"], worst_rows)
    )
    plots = [
        ("F1 by question type", "f1_by_type.png"),
        ("Score calibration", "calibration.png"),
        ("Abstention trade-off", "abstention.png"),
        ("Latency", "latency.png"),
    ]

    md = [f"# Evaluation report: {config.get('dataset', '')}", ""]
    for title, headers, rows in sections:
        md += [f"## {title}", "", *_table(headers, rows), ""]
    md += ["## Plots", ""] + [f"![{t}]({f})" for t, f in plots] + [""]
    (out / "report.md").write_text("\n".join(md), encoding="utf-8")

    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Evaluation report: {html.escape(str(config.get('dataset', '')))}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;"
        "padding:0 1rem;color:#1b1b1b}table{border-collapse:collapse;margin:1rem 0}"
        "td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;vertical-align:top}"
        "th{background:#f0f0f0}img{max-width:100%;margin:.5rem 0}</style></head><body>",
        f"<h1>Evaluation report: {html.escape(str(config.get('dataset', '')))}</h1>",
    ]
    for title, headers, rows in sections:
        parts.append(f"<h2>{html.escape(title)}</h2><table><tr>")
        parts += [f"<th>{html.escape(h)}</th>" for h in headers]
        parts.append("</tr>")
        for row in rows:
            parts.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
        parts.append("</table>")
    parts.append("<h2>Plots</h2>")
    parts += [f"<h3>{html.escape(t)}</h3><img src='{f}' alt='{html.escape(t)}'>" for t, f in plots]
    parts.append("</body></html>")
    (out / "report.html").write_text("\n".join(parts), encoding="utf-8")


def _at(sweep: Sequence[dict[str, float]], threshold: float) -> tuple[float, float, float]:
    row = min(sweep, key=lambda r: abs(r["threshold"] - threshold))
    return row["f1"], row["has_ans_f1"], row["no_ans_accuracy"]
