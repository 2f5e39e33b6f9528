"""Text cleaning: normalise whitespace and drop site boilerplate, keeping the article text.

The cleaned text is what gets stored, chunked and cited, so every offset refers to it.
"""

from __future__ import annotations

import re
import unicodedata

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\ufeff]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u3000]+")
_BLANK_RUNS = re.compile(r"\n{3,}")

_BOILERPLATE_PATTERNS = [
    re.compile(r"^\s*(copyright|©|\(c\))", re.IGNORECASE),
    re.compile(r"all rights reserved", re.IGNORECASE),
    re.compile(r"^\s*(tel|phone|fax|e-?mail|telephone)\s*[:：]", re.IGNORECASE),
    re.compile(
        r"^\s*(share (this|on)|follow us|subscribe to|sign up for our newsletter|"
        r"click here|back to top|print this page|related (links|articles|stories))\b",
        re.IGNORECASE,
    ),
]
_MAX_BOILERPLATE_WORDS = 20


def _is_navigation(line: str) -> bool:
    """A line of short items separated by pipes or bullets: "Home | About Us | Contact"."""
    parts = [p.strip() for p in re.split(r"\s[|·•]\s|\s\|\s*|\s*\|\s", line) if p.strip()]
    return len(parts) >= 3 and all(len(p.split()) <= 4 for p in parts)


def is_boilerplate(line: str) -> bool:
    stripped = line.strip()
    if not stripped or len(stripped.split()) > _MAX_BOILERPLATE_WORDS:
        return False
    return _is_navigation(stripped) or any(p.search(stripped) for p in _BOILERPLATE_PATTERNS)


def normalise(text: str) -> str:
    """Unicode NFC, Unix newlines, no control characters, single spaces, at most one blank line."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()


def clean_text(text: str) -> str:
    """Normalise ``text`` and drop boilerplate lines (copyright, contact and navigation lines)."""
    lines = normalise(text).split("\n")
    kept = [line for line in lines if not is_boilerplate(line)]
    return _BLANK_RUNS.sub("\n\n", "\n".join(kept)).strip()
