"""Gold question sets: the project's JSONL format and the official SQuAD v1.1/v2.0 JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


class GoldFormatError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class GoldQuestion:
    qid: str
    question: str
    answers: tuple[str, ...]  # empty: the articles cannot answer it
    doc_id: str | None = None  # the article holding the answer, when known
    source: str | None = None  # ... or its file name / source path
    context: str | None = None  # SQuAD: the question's own paragraph
    title: str | None = None

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


@dataclass(slots=True)
class SquadParagraph:
    doc_id: str
    title: str
    text: str
    questions: list[GoldQuestion] = field(default_factory=list)


def load_gold_jsonl(path: Path) -> list[GoldQuestion]:
    """One ``{"id", "question", "answers", "doc_id"?, "source"?}`` a line; others ignored."""
    questions: list[GoldQuestion] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            answers = row["answers"]
            if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
                raise GoldFormatError("'answers' must be a list of strings")
            question = row["question"]
            if not isinstance(question, str) or not question.strip():
                raise GoldFormatError("'question' must be a non-empty string")
            questions.append(
                GoldQuestion(
                    qid=str(row.get("id", f"line-{lineno}")),
                    question=question,
                    answers=tuple(answers),
                    doc_id=row.get("doc_id"),
                    source=row.get("source"),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise GoldFormatError(f"{path}:{lineno}: {exc}") from None
    if not questions:
        raise GoldFormatError(f"{path}: no questions")
    return questions


def load_squad(path: Path) -> list[SquadParagraph]:
    """Paragraphs of an official SQuAD file, each with its questions (v2.0 impossible ones too)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        articles = data["data"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise GoldFormatError(f"{path}: not a SQuAD file ({exc})") from None
    paragraphs: list[SquadParagraph] = []
    for a, article in enumerate(articles):
        title = str(article.get("title", f"article {a}")).replace("_", " ")
        for p, para in enumerate(article["paragraphs"]):
            doc_id = f"squad-{a:03d}-{p:03d}"
            paragraph = SquadParagraph(doc_id, title, para["context"])
            for qa in para["qas"]:
                impossible = bool(qa.get("is_impossible", False))
                answers = () if impossible else tuple(x["text"] for x in qa["answers"])
                paragraph.questions.append(
                    GoldQuestion(
                        qid=qa["id"],
                        question=qa["question"],
                        answers=answers,
                        doc_id=doc_id,
                        context=para["context"],
                        title=title,
                    )
                )
            paragraphs.append(paragraph)
    return paragraphs
