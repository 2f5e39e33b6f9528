"""Ingestion: files -> cleaned documents -> chunks -> embeddings -> a new index snapshot.

Incremental: an unchanged document is skipped, a changed file replaces its old document and
chunks, and only new chunks are embedded. The whole run holds the index lock and publishes one
new snapshot at the end, so a crash leaves the previous index live.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from embeddings import Embedder
from qa.chunking import Chunker, index_text
from qa.loaders import LoadError, discover, load_file
from qa.settings import Settings
from qa.store import IndexLoadError, IndexNotFoundError, IndexSnapshot, IndexStore
from qa.types import Chunk, Document
from qa.vector_index import choose_kind

log = logging.getLogger(__name__)


@dataclass(slots=True)
class IngestReport:
    files: int = 0
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: int = 0
    errors: list[LoadError] = field(default_factory=list)
    chunks_embedded: int = 0
    n_documents: int = 0
    n_chunks: int = 0
    written: bool = False
    seconds: dict[str, float] = field(default_factory=dict)


def check_embedding_model(
    snapshot: IndexSnapshot, settings: Settings, dimension: int | None = None
) -> None:
    """The index must have been built by the embedding model in use (name, and dimension)."""
    built_with = snapshot.manifest.embedding_model
    manifest_file = settings.index_dir / "snapshots" / snapshot.name / "manifest.json"
    if built_with != settings.embedding_model:
        raise IndexLoadError(
            f"the index at {settings.index_dir} was built with embedding model {built_with!r} "
            f"but the settings ask for {settings.embedding_model!r} ({manifest_file}); set "
            f"RAGQA_EMBEDDING_MODEL={built_with!r} or rebuild with "
            "`ragqa ingest --rebuild PATH...`"
        )
    if dimension is not None and dimension != snapshot.manifest.dimension:
        raise IndexLoadError(
            f"the index at {settings.index_dir} holds vectors of dimension "
            f"{snapshot.manifest.dimension} ({manifest_file}) but the embedding model "
            f"{settings.embedding_model!r} makes vectors of dimension {dimension}; use the model "
            "the index was built with or rebuild with `ragqa ingest --rebuild PATH...`"
        )
    built_by = snapshot.manifest.embedding_backend
    in_use = settings.embedding_backend
    if built_by and built_by != in_use and ("int8" in built_by or "int8" in in_use):
        # torch and onnx make the same vectors (to 1e-4); int8 ones differ a little, so mixing
        # them costs some recall without breaking anything
        log.warning(
            "the index at %s was embedded with the %s backend but RAGQA_EMBEDDING_BACKEND is "
            "%s: questions and new articles are embedded slightly differently, which costs a "
            "little recall; set RAGQA_EMBEDDING_BACKEND=%s or rebuild with "
            "`ragqa ingest --rebuild PATH...`",
            settings.index_dir,
            built_by,
            in_use,
            built_by,
        )


class Ingestor:
    def __init__(self, settings: Settings, embedder: Embedder) -> None:
        self.settings = settings
        self.embedder = embedder
        self.store = IndexStore(settings.index_dir)

    def _chunker(self) -> Chunker:
        return Chunker(
            self.embedder.count_tokens,
            max_tokens=self.settings.chunk_tokens,
            overlap_sentences=self.settings.chunk_overlap_sentences,
        )

    def _previous(self, rebuild: bool) -> IndexSnapshot | None:
        if rebuild:
            return None
        try:
            snapshot = self.store.load()
        except IndexNotFoundError:
            return None
        check_embedding_model(snapshot, self.settings, self.embedder.dimension)
        manifest = snapshot.manifest
        if (manifest.chunk_tokens, manifest.chunk_overlap_sentences) != (
            self.settings.chunk_tokens,
            self.settings.chunk_overlap_sentences,
        ):
            log.warning(
                "index was chunked with %s tokens / %s overlap; new documents use the current "
                "settings (rebuild to re-chunk everything)",
                manifest.chunk_tokens,
                manifest.chunk_overlap_sentences,
            )
        return snapshot

    def _size_limited(self, files: list[Path]) -> tuple[list[Path], list[LoadError]]:
        """Files over RAGQA_MAX_DOCUMENT_BYTES are skipped before they are read."""
        limit = self.settings.max_document_bytes
        kept: list[Path] = []
        skipped: list[LoadError] = []
        for path in files:
            try:
                size = path.stat().st_size
            except OSError as exc:
                skipped.append(LoadError(str(path), str(exc)))
                continue
            if size > limit:
                reason = f"{size:,} bytes; the limit is {limit:,} (RAGQA_MAX_DOCUMENT_BYTES)"
                skipped.append(LoadError(str(path), reason))
            else:
                kept.append(path)
        return kept, skipped

    def ingest(
        self, paths: Sequence[Path], rebuild: bool = False, progress: bool = True
    ) -> IngestReport:
        """Read files and folders (recursively) and add what they hold to the index."""
        files, errors = discover(paths)
        files, too_big = self._size_limited(files)
        errors.extend(too_big)

        def loaded() -> Iterator[Document | LoadError]:
            for path in tqdm(files, desc="Reading", unit="file", disable=not progress):
                try:
                    yield from load_file(path)
                except (RecursionError, MemoryError, OSError, ValueError) as exc:
                    # e.g. JSON nested deeper than the parser follows: skip the file, go on
                    yield LoadError(str(path), f"cannot be read: {type(exc).__name__}: {exc}")

        report = self.ingest_documents(loaded(), rebuild=rebuild, progress=progress)
        report.files = len(files)
        report.errors = errors + report.errors
        return report

    def ingest_documents(
        self,
        items: Iterable[Document | LoadError],
        rebuild: bool = False,
        progress: bool = True,
    ) -> IngestReport:
        """Add already-built documents (or report load errors) to the index, incrementally."""
        report = IngestReport()
        with self.store.lock():
            t0 = time.perf_counter()
            previous = self._previous(rebuild)
            documents: dict[str, Document] = dict(previous.documents) if previous else {}
            by_source = {d.source: d.doc_id for d in documents.values()}

            new_docs: dict[str, Document] = {}
            for item in items:
                if isinstance(item, LoadError):
                    report.errors.append(item)
                    log.warning("skipped %s: %s", item.path, item.reason)
                    continue
                old = documents.get(item.doc_id)
                if old is not None and old.content_hash == item.content_hash:
                    report.unchanged += 1
                    continue
                if old is not None:
                    report.replaced.append(old.doc_id)
                    del documents[old.doc_id]
                old_id = by_source.get(item.source)
                if old_id is not None and old_id != item.doc_id and old_id in documents:
                    report.replaced.append(old_id)
                    del documents[old_id]
                documents[item.doc_id] = item
                new_docs[item.doc_id] = item
                by_source[item.source] = item.doc_id
            report.added = [d for d in new_docs if d not in report.replaced]
            report.seconds["read"] = time.perf_counter() - t0

            if previous is not None and not new_docs and set(documents) == set(previous.documents):
                report.n_documents, report.n_chunks = len(documents), len(previous.chunks)
                return report

            t1 = time.perf_counter()
            chunker = self._chunker()
            fresh_chunks: list[Chunk] = []
            for doc in tqdm(new_docs.values(), desc="Chunking", unit="doc", disable=not progress):
                fresh_chunks.extend(chunker.chunk(doc))
            report.seconds["chunk"] = time.perf_counter() - t1

            t2 = time.perf_counter()
            fresh_vectors = self.embedder.encode(
                [index_text(documents[c.doc_id].title, c.text) for c in fresh_chunks],
                show_progress=progress,
            )
            report.chunks_embedded = len(fresh_chunks)
            report.seconds["embed"] = time.perf_counter() - t2

            kept_chunks: list[Chunk] = []
            kept_rows: list[int] = []
            if previous is not None:
                for row, chunk in enumerate(previous.chunks):
                    if chunk.doc_id in documents and chunk.doc_id not in new_docs:
                        kept_chunks.append(chunk)
                        kept_rows.append(row)
            dim = self.embedder.dimension
            kept_vectors = (
                previous.embeddings[kept_rows] if previous is not None else np.zeros((0, dim))
            )
            chunks = kept_chunks + fresh_chunks
            embeddings = np.vstack([kept_vectors, fresh_vectors]).astype(np.float32)

            t3 = time.perf_counter()
            kind = choose_kind(self.settings.index_kind, len(chunks), self.settings.hnsw_threshold)
            self.store.write(
                documents,
                chunks,
                embeddings,
                embedding_model=self.settings.embedding_model,
                embedding_backend=self.settings.embedding_backend,
                index_kind=kind,
                chunk_tokens=self.settings.chunk_tokens,
                chunk_overlap_sentences=self.settings.chunk_overlap_sentences,
            )
            report.seconds["index"] = time.perf_counter() - t3
            report.written = True
            report.n_documents, report.n_chunks = len(documents), len(chunks)
        return report
