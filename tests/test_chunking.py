from __future__ import annotations

import itertools

from qa.chunking import Chunker, sentence_spans
from qa.loaders import make_document

from .conftest import FakeEmbedder


def _doc(text: str):  # type: ignore[no-untyped-def]
    return make_document(title="t", text=text, source="s")


def test_sentences_do_not_cross_paragraphs() -> None:
    text = "First sentence here. Second one\n\nnew paragraph starts. Last."
    spans = [text[s:e] for s, e in sentence_spans(text)]
    assert spans == ["First sentence here.", "Second one", "new paragraph starts.", "Last."]


def test_chunks_respect_budget_keep_offsets_and_overlap() -> None:
    sentences = [f"Sentence number {i} says something about topic {i % 7}." for i in range(40)]
    text = " ".join(sentences[:20]) + "\n\n" + " ".join(sentences[20:])
    counter = FakeEmbedder().count_tokens
    chunks = Chunker(counter, max_tokens=50, overlap_sentences=1).chunk(_doc(text))
    assert len(chunks) > 5
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        assert counter([chunk.text])[0] <= 50 + 2  # paragraph whitespace is not counted
    covered = set()
    for chunk in chunks:
        covered.update(range(chunk.start, chunk.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())
    for a, b in itertools.pairwise(chunks):
        assert b.start < a.end, "consecutive chunks overlap by a sentence"


def test_overlong_sentence_is_split() -> None:
    text = " ".join(f"word{i}" for i in range(500)) + "."
    chunks = Chunker(FakeEmbedder().count_tokens, max_tokens=60, overlap_sentences=0).chunk(
        _doc(text)
    )
    assert len(chunks) >= 8
    assert all(text[c.start : c.end] == c.text for c in chunks)
