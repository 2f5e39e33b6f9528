"""Sentence-aware chunking with overlap and a token budget.

Paragraphs are split into sentences (spaCy's rule-based sentencizer); consecutive sentences are
packed into chunks of at most ``max_tokens`` word pieces, and each chunk after the first repeats
the last ``overlap_sentences`` sentences of the one before. A sentence longer than the budget is
cut at word-piece boundaries. Every chunk keeps exact ``[start, end)`` offsets into the text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from qa.types import Chunk, Document

if TYPE_CHECKING:
    from spacy.language import Language

_PARAGRAPH = re.compile(r"\n\s*\n")

TokenCounter = Callable[[Sequence[str]], list[int]]


@lru_cache(maxsize=1)
def _sentencizer() -> Language:
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.max_length = 10_000_000
    return nlp


def index_text(title: str, chunk_text: str) -> str:
    """What the embedder and BM25 see for a chunk: its article title, then its text."""
    return f"{title}\n{chunk_text}" if title else chunk_text


def paragraph_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    pos = 0
    for match in _PARAGRAPH.finditer(text):
        spans.append((pos, match.start()))
        pos = match.end()
    spans.append((pos, len(text)))
    return [(s, e) for s, e in spans if text[s:e].strip()]


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Sentence ``[start, end)`` offsets, never crossing a paragraph break."""
    nlp = _sentencizer()
    spans: list[tuple[int, int]] = []
    for p_start, p_end in paragraph_spans(text):
        doc = nlp(text[p_start:p_end])
        for sent in doc.sents:
            s, e = p_start + sent.start_char, p_start + sent.end_char
            while e > s and text[e - 1].isspace():
                e -= 1
            if e > s:
                spans.append((s, e))
    return spans


@dataclass(frozen=True, slots=True)
class _Piece:
    start: int
    end: int
    tokens: int


class Chunker:
    def __init__(
        self,
        count_tokens: TokenCounter,
        max_tokens: int = 200,
        overlap_sentences: int = 1,
        split_long: Callable[[str, int], list[tuple[int, int]]] | None = None,
    ) -> None:
        self.count_tokens = count_tokens
        self.max_tokens = max_tokens
        self.overlap_sentences = overlap_sentences
        self.split_long = split_long or _split_by_words

    def _pieces(self, text: str) -> list[_Piece]:
        spans = sentence_spans(text)
        counts = self.count_tokens([text[s:e] for s, e in spans])
        pieces: list[_Piece] = []
        for (s, e), n in zip(spans, counts, strict=True):
            if n <= self.max_tokens:
                pieces.append(_Piece(s, e, n))
                continue
            parts = self.split_long(text[s:e], self.max_tokens)
            part_counts = self.count_tokens([text[s + a : s + b] for a, b in parts])
            pieces.extend(
                _Piece(s + a, s + b, c) for (a, b), c in zip(parts, part_counts, strict=True)
            )
        return pieces

    def chunk(self, document: Document) -> list[Chunk]:
        text = document.text
        pieces = self._pieces(text)
        groups: list[list[_Piece]] = []
        i = 0
        while i < len(pieces):
            group = [pieces[i]]
            budget = pieces[i].tokens
            j = i + 1
            while j < len(pieces) and budget + pieces[j].tokens <= self.max_tokens:
                group.append(pieces[j])
                budget += pieces[j].tokens
                j += 1
            groups.append(group)
            if j >= len(pieces):
                break
            # step back for overlap, but always move forward by at least one piece
            i = max(j - self.overlap_sentences, i + 1)
        return [
            Chunk(
                chunk_id=f"{document.doc_id}:{n}",
                doc_id=document.doc_id,
                start=g[0].start,
                end=g[-1].end,
                text=text[g[0].start : g[-1].end],
            )
            for n, g in enumerate(groups)
        ]


def _split_by_words(sentence: str, max_tokens: int) -> list[tuple[int, int]]:
    """Cut an over-long sentence into runs of words, about ``max_tokens`` word pieces each.

    Word pieces are estimated at 1.5 per word, so a run holds ``max_tokens / 1.5`` words.
    """
    words = [m.span() for m in re.finditer(r"\S+", sentence)]
    per_run = max(1, int(max_tokens / 1.5))
    return [
        (words[k][0], words[min(k + per_run, len(words)) - 1][1])
        for k in range(0, len(words), per_run)
    ]
