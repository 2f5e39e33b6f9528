"""Reader training data made in this project: questions about BBC articles and about passages
written by the project.

Two sources, both hand-written questions with exact answer spans:

- ``handwritten/``: questions about real BBC articles. The article text is never committed:
  every record points into a file of the BBC corpus (``../shared/data/bbc`` by default) by path
  and character offsets, and :func:`load_examples` reads the text at run time.
- ``written/``: encyclopedia-style passages written for this project (so their text is
  committed), each with its questions (:func:`load_written_examples`).

Both loaders check that every answer stands at its recorded offsets; :func:`load_all_examples`
is what training reads.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

HANDWRITTEN_DIR = Path(__file__).with_name("handwritten")
WRITTEN_DIR = Path(__file__).with_name("written")
DEFAULT_BBC_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "bbc"


QUESTION_TYPES = frozenset(
    {"who", "when", "where", "what", "which", "how_many", "why", "how", "other"}
)


class TrainingDataError(ValueError):
    """A record is malformed or its answer does not stand at its offsets."""


@dataclass(frozen=True, slots=True)
class QAExample:
    """One question against one passage; answers are offsets into ``context``."""

    id: str
    article: str
    question: str
    context: str
    answers: tuple[tuple[int, str], ...]
    qtype: str
    title: str = ""  # the article's first line

    @property
    def answerable(self) -> bool:
        return bool(self.answers)

    @property
    def source(self) -> str:
        """``written`` for the project's own passages, ``bbc`` for the BBC questions."""
        return "written" if self.article.startswith("written/") else "bbc"

    @property
    def split_key(self) -> str:
        """What the held-out split goes by: the article's title, not its file name, because
        the BBC corpus holds the same article (or a lightly edited copy) under two names and
        both copies must fall on the same side."""
        return " ".join(self.title.lower().split()) or self.article


def is_held_out(key: str, percent: int = 10) -> bool:
    """A stable split by article (never by question), so no article is in both parts; ``key``
    names the article (:attr:`QAExample.split_key`)."""
    digest = hashlib.sha1(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % 100 < percent


def _records(files: Iterable[Path]) -> Iterable[tuple[Path, int, dict]]:
    for path in files:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    yield path, n, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise TrainingDataError(f"{path}:{n}: invalid JSON ({exc.msg})") from exc


def _check_answer(text: str, start: int, answer: str, where: str, of: str) -> None:
    """Raise unless ``answer`` is a non-blank span standing at ``start`` of ``text`` (``where``
    names the record, ``of`` the text, in the message)."""
    if start < 0 or text[start : start + len(answer)] != answer or not answer.strip():
        raise TrainingDataError(f"{where}: answer {answer!r} is not at offset {start} of {of}")


def _question_type(record: dict, where: str) -> str:
    """The record's ``type`` (``other`` when absent); raise on one outside
    :data:`QUESTION_TYPES`, so a misspelt type does not end up as a class of its own."""
    qtype = str(record.get("type", "other"))
    if qtype not in QUESTION_TYPES:
        allowed = ", ".join(sorted(QUESTION_TYPES))
        raise TrainingDataError(f"{where}: unknown question type {qtype!r} (allowed: {allowed})")
    return qtype


def load_examples(
    bbc_dir: Path = DEFAULT_BBC_DIR, files: Sequence[Path] | None = None
) -> list[QAExample]:
    """Read the hand-written records and resolve them against the BBC text.

    Raises :class:`TrainingDataError` naming the file and line of the first bad record.
    """
    files = sorted(HANDWRITTEN_DIR.glob("*.jsonl")) if files is None else files
    texts: dict[str, str] = {}
    examples: list[QAExample] = []
    for path, n, rec in _records(files):
        where = f"{path.name}:{n}"
        try:
            article = rec["article"]
            c0, c1 = int(rec["context_start"]), int(rec["context_end"])
            question = str(rec["question"]).strip()
            answers = rec["answers"]
        except (KeyError, TypeError, ValueError) as exc:
            raise TrainingDataError(f"{where}: missing or invalid field ({exc})") from exc
        if article not in texts:
            file = bbc_dir / article
            if not file.is_file():
                raise TrainingDataError(f"{where}: no article {file}")
            texts[article] = file.read_text(encoding="utf-8")
        text = texts[article]
        if not (0 <= c0 < c1 <= len(text)) or not question:
            raise TrainingDataError(f"{where}: bad context offsets or empty question")
        spans: list[tuple[int, str]] = []
        for ans in answers:
            start, answer = int(ans["start"]), str(ans["text"])
            _check_answer(text, start, answer, where, article)
            if not (c0 <= start and start + len(answer) <= c1):
                raise TrainingDataError(f"{where}: answer {answer!r} lies outside its context")
            spans.append((start - c0, answer))
        examples.append(
            QAExample(
                id=str(rec.get("id", where)),
                article=article,
                question=question,
                context=text[c0:c1],
                answers=tuple(spans),
                qtype=_question_type(rec, where),
                title=next((line.strip() for line in text.splitlines() if line.strip()), ""),
            )
        )
    return examples


def load_written_examples(files: Sequence[Path] | None = None) -> list[QAExample]:
    """Read the project's own passages (``written/*.jsonl``: one passage and its questions a
    line, format in ``written/FORMAT.md``) into examples.

    Raises :class:`TrainingDataError` naming the file, line and question of the first bad record.
    """
    files = sorted(WRITTEN_DIR.glob("*.jsonl")) if files is None else files
    examples: list[QAExample] = []
    for path, n, rec in _records(files):
        where = f"{path.name}:{n}"
        try:
            passage_id, title, text = str(rec["id"]), str(rec["title"]).strip(), str(rec["text"])
            questions = list(rec["questions"])
        except (KeyError, TypeError, ValueError) as exc:
            raise TrainingDataError(f"{where}: missing or invalid field ({exc})") from exc
        if not title or not text.strip() or not questions:
            raise TrainingDataError(f"{where}: empty title, text or question list")
        for q in questions:
            try:
                qid, question = str(q["id"]), str(q["question"]).strip()
                raw = [(int(a["start"]), str(a["text"])) for a in q["answers"]]
            except (KeyError, TypeError, ValueError) as exc:
                raise TrainingDataError(f"{where}: missing or invalid field ({exc})") from exc
            if not question:
                raise TrainingDataError(f"{where}: {qid}: empty question")
            for start, answer in raw:
                _check_answer(text, start, answer, f"{where}: {qid}", "its text")
            examples.append(
                QAExample(
                    id=qid,
                    article=f"written/{path.name}#{passage_id}",
                    question=question,
                    context=text,
                    answers=tuple(raw),
                    qtype=_question_type(q, f"{where}: {qid}"),
                    title=title,
                )
            )
    return examples


def load_all_examples(bbc_dir: Path = DEFAULT_BBC_DIR) -> list[QAExample]:
    """Everything training reads: the BBC questions, then the written passages' questions."""
    return load_examples(bbc_dir) + load_written_examples()


_YEAR = re.compile(r"\b(?:1\d{3}|20\d{2})\b")


def is_year_question(example: QAExample) -> bool:
    """The question names a year (1000-2099) that the passage also states somewhere."""
    years = _YEAR.findall(example.question)
    return bool(years) and all(year in example.context for year in years)


def balance_year_questions(examples: Sequence[QAExample]) -> list[QAExample]:
    """Drop unanswerable year questions until a year in the question no longer predicts "no
    answer": their share among year questions is cut to the share of unanswerable questions
    in ``examples`` as a whole.

    The unanswerable "twins" (FORMAT.md) often move an event to another year the passage
    mentions, and before this they outnumbered the answerable year questions, so a reader
    learnt that a year must sit in the answer's own sentence. News articles often state it once
    ("2019 ... Conference was closed ... Rao Quan ... declared the closing of the annual
    conference"). Which twins stay is fixed by a hash of their ids; order is kept.
    """
    unanswerable_share = sum(not e.answerable for e in examples) / max(1, len(examples))
    if unanswerable_share >= 1:  # nothing answerable: nothing to balance against
        return list(examples)
    year_questions = [e for e in examples if is_year_question(e)]
    twins = [e for e in year_questions if not e.answerable]
    answerable_years = len(year_questions) - len(twins)
    keep_count = round(answerable_years * unanswerable_share / (1 - unanswerable_share))
    if len(twins) <= keep_count:
        return list(examples)
    ranked = sorted(twins, key=lambda e: hashlib.sha1(e.id.encode("utf-8")).digest())
    dropped = {e.id for e in ranked[keep_count:]}
    return [e for e in examples if e.id not in dropped]
