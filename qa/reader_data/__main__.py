"""Check reader training data files and print what they hold.

    python -m qa.reader_data [FILE.jsonl ...]   (default: every file of both sources)

Files under ``written/`` (or any file whose records carry ``questions``) are read as written
passages, the others as BBC questions. Exits 1 with the file, line and reason of the first bad
record.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from qa.reader_data import (
    HANDWRITTEN_DIR,
    WRITTEN_DIR,
    QAExample,
    TrainingDataError,
    load_examples,
    load_written_examples,
)


def _is_written(path: Path) -> bool:
    first = next((line for line in path.read_text("utf-8").splitlines() if line.strip()), "{}")
    try:
        return "questions" in json.loads(first)
    except json.JSONDecodeError:
        return path.parent.name == WRITTEN_DIR.name


def main(argv: list[str]) -> int:
    files = [Path(a) for a in argv] or [
        *sorted(HANDWRITTEN_DIR.glob("*.jsonl")),
        *sorted(WRITTEN_DIR.glob("*.jsonl")),
    ]
    examples: list[QAExample] = []
    try:
        for path in files:
            loaded = (
                load_written_examples([path]) if _is_written(path) else load_examples(files=[path])
            )
            passages = len({e.article for e in loaded})
            unanswerable = sum(not e.answerable for e in loaded)
            print(
                f"{path}: {len(loaded)} questions, {passages} passages, {unanswerable} unanswerable"
            )
            examples += loaded
    except TrainingDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    duplicates = [i for i, c in Counter(e.id for e in examples).items() if c > 1]
    if duplicates:
        print(
            f"error: duplicate question ids: {', '.join(sorted(duplicates)[:10])}", file=sys.stderr
        )
        return 1
    types = Counter(e.qtype for e in examples)
    share = sum(not e.answerable for e in examples) / max(1, len(examples))
    print(
        f"total: {len(examples)} questions, {100 * share:.0f}% unanswerable; types: "
        + ", ".join(f"{t} {c}" for t, c in types.most_common())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
