"""Read article files into cleaned :class:`Document` records.

Supported: ``.txt`` and ``.md`` (title = first non-empty line), ``.html``/``.htm`` (title from
``<title>`` or ``<h1>``, text from the main content), ``.json`` (one record, a list of records or
``{"documents": [...]}``) and ``.jsonl`` (one record a line). A record has ``text`` and ``title``
and optionally ``id``, ``url`` and ``date``.

A file that cannot be read or parsed yields a :class:`LoadError` with its path and reason; the
caller reports it and goes on with the rest.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bs4 import BeautifulSoup

from qa.cleaning import clean_text, normalise
from qa.types import Document

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
JSON_SUFFIXES = {".json", ".jsonl"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | JSON_SUFFIXES

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_DROP_TAGS = ["script", "style", "noscript", "nav", "header", "footer", "aside", "form", "iframe"]
_BLOCK_TAGS = ["p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "blockquote", "pre", "td", "th", "dd"]


@dataclass(frozen=True, slots=True)
class LoadError:
    path: str
    reason: str


def content_hash(title: str, text: str) -> str:
    return hashlib.sha256(f"{title}\n\n{text}".encode()).hexdigest()


def make_document(
    *,
    title: str,
    text: str,
    source: str,
    given_id: str | None = None,
    url: str | None = None,
    date: str | None = None,
) -> Document:
    """Build a Document with a stable id: the given id when it is URL-safe, else a hash."""
    digest = content_hash(title, text)
    if given_id is None:
        doc_id = digest[:16]
    elif _SAFE_ID.match(given_id):
        doc_id = given_id
    else:
        doc_id = "id-" + hashlib.sha256(given_id.encode()).hexdigest()[:16]
    return Document(
        doc_id=doc_id,
        title=title,
        text=text,
        source=source,
        content_hash=digest,
        url=url,
        date=date,
    )


def display_path(path: Path) -> str:
    """The path relative to the working directory when it is below it, else absolute."""
    resolved = path.resolve()
    try:
        return str(resolved.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(resolved)


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not valid UTF-8 (byte {exc.start})") from None


def _split_title(text: str) -> tuple[str, str]:
    """First non-empty line is the title; the rest is the body (the title alone if no rest)."""
    lines = normalise(text).split("\n")
    for i, line in enumerate(lines):
        if line.strip():
            title = line.strip().lstrip("#").strip()
            body = "\n".join(lines[i + 1 :])
            return title, body
    return "", ""


_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+", re.MULTILINE)
_MD_EMPHASIS = re.compile(r"(\*\*|__|\*|`)(?=\S)(.+?)(?<=\S)\1")


def _strip_markdown(text: str) -> str:
    text = _MD_LINK.sub(r"\1", text)
    text = _MD_HEADING.sub("", text)
    return _MD_EMPHASIS.sub(r"\2", text)


def _text_document(raw: str, source: str, markdown: bool) -> Document:
    title, body = _split_title(raw)
    if markdown:
        body = _strip_markdown(body)
    body = clean_text(body)
    if not body:
        body = clean_text(title)
    if not body:
        raise ValueError("no article text after cleaning")
    return make_document(title=title or body.split("\n", 1)[0][:120], text=body, source=source)


def _html_document(raw: str, source: str) -> Document:
    soup = BeautifulSoup(raw, "lxml")
    title_tag = soup.find("title")
    h1 = soup.find("h1")
    title = (title_tag.get_text(" ", strip=True) if title_tag else "") or (
        h1.get_text(" ", strip=True) if h1 else ""
    )
    for tag in soup(_DROP_TAGS):
        tag.decompose()
    root = soup.find("article") or soup.find("main") or soup.find("body") or soup
    blocks = [b for b in root.find_all(_BLOCK_TAGS) if not b.find_parent(_BLOCK_TAGS)]
    parts = [b.get_text(" ", strip=True) for b in blocks] if blocks else [root.get_text("\n")]
    if h1 and parts and parts[0] == h1.get_text(" ", strip=True):
        parts = parts[1:]
    body = clean_text("\n\n".join(p for p in parts if p))
    if not body:
        raise ValueError("no article text in the HTML")
    return make_document(title=title or body.split("\n", 1)[0][:120], text=body, source=source)


def _record_document(record: Any, source: str) -> Document:
    if not isinstance(record, dict):
        raise ValueError(f"a record must be a JSON object, got {type(record).__name__}")
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("record has no non-empty 'text' string")
    title = record.get("title")
    if title is not None and not isinstance(title, str):
        raise ValueError("record 'title' must be a string")
    given_id = record.get("id")
    if given_id is not None and not isinstance(given_id, str | int):
        raise ValueError("record 'id' must be a string or an integer")
    body = clean_text(text)
    if not body:
        raise ValueError("no article text after cleaning")
    clean_title = normalise(title) if title else body.split("\n", 1)[0][:120]
    return make_document(
        title=clean_title,
        text=body,
        source=source,
        given_id=str(given_id) if given_id is not None else None,
        url=record.get("url") if isinstance(record.get("url"), str) else None,
        date=str(record["date"]) if record.get("date") is not None else None,
    )


def _json_records(raw: str) -> list[Any]:
    data = json.loads(raw)
    if isinstance(data, dict):
        for key in ("documents", "articles", "records", "data"):
            if isinstance(data.get(key), list):
                return list(data[key])
        return [data]
    if isinstance(data, list):
        return data
    raise ValueError("JSON must be an object or a list of objects")


def _record_source(source: str, record: Any, index: int) -> str:
    if isinstance(record, dict) and record.get("id") is not None:
        return f"{source}#{record['id']}"
    return f"{source}#{index}"


def load_file(path: Path) -> Iterator[Document | LoadError]:
    """Yield the documents in one file, or LoadErrors for what cannot be read."""
    source = display_path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        yield LoadError(source, f"unsupported file type '{suffix or '(none)'}'")
        return
    try:
        raw = _decode(path.read_bytes())
    except (OSError, ValueError) as exc:
        yield LoadError(source, str(exc))
        return
    try:
        if suffix in TEXT_SUFFIXES:
            yield _text_document(raw, source, markdown=suffix != ".txt")
        elif suffix in HTML_SUFFIXES:
            yield _html_document(raw, source)
        elif suffix == ".json":
            for i, record in enumerate(_json_records(raw)):
                try:
                    yield _record_document(record, _record_source(source, record, i))
                except ValueError as exc:
                    yield LoadError(f"{source} record {i}", str(exc))
        else:
            yield from _jsonl_documents(raw, source)
    except (ValueError, json.JSONDecodeError) as exc:
        yield LoadError(source, str(exc))


def _jsonl_documents(raw: str, source: str) -> Iterator[Document | LoadError]:
    for lineno, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            yield _record_document(record, _record_source(source, record, lineno))
        except ValueError as exc:
            yield LoadError(f"{source}:{lineno}", str(exc))


def discover(paths: Iterable[Path]) -> tuple[list[Path], list[LoadError]]:
    """Expand files and folders (recursively) into the supported files, sorted; report the rest."""
    files: list[Path] = []
    errors: list[LoadError] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                p
                for p in sorted(path.rglob("*"))
                if p.is_file()
                and p.suffix.lower() in SUPPORTED_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif path.is_file():
            files.append(path)
        else:
            errors.append(LoadError(str(path), "no such file or directory"))
    return files, errors
