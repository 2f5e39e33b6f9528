"""The index directory: documents, chunks, embeddings, FAISS and BM25, written atomically.

Layout::

    INDEX_DIR/
      CURRENT                 name of the live snapshot (replaced atomically)
      .lock                   held by a writer for the whole of an ingestion
      snapshots/<name>/       one complete snapshot
        manifest.json         format version, embedding model, counts, file checksums
        documents.jsonl       one Document a line (the cleaned text every offset refers to)
        chunks.jsonl          chunk_id, doc_id, start, end
        embeddings.npy        float32 [n_chunks, dimension], L2-normalised
        vectors.faiss         FAISS index over the embeddings
        bm25/                 bm25s index and vocabulary

A writer builds a new snapshot in a temporary folder, fsyncs it, renames it into place and only
then replaces ``CURRENT``. A crash at any point leaves the previous snapshot live and loadable.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from qa import vector_index
from qa.chunking import index_text
from qa.lexical import LexicalIndex
from qa.types import Chunk, Document

FORMAT_VERSION = 1
KEEP_SNAPSHOTS = 2
_REBUILD_HINT = "rebuild it with `ragqa ingest --rebuild PATH...`"


class IndexLoadError(RuntimeError):
    """The index cannot be used; the message names the file and the fix."""


class IndexNotFoundError(IndexLoadError):
    pass


@dataclass(slots=True)
class Manifest:
    format_version: int
    embedding_model: str
    dimension: int
    index_kind: str
    n_documents: int
    n_chunks: int
    chunk_tokens: int
    chunk_overlap_sentences: int
    created_at: float = field(default_factory=time.time)
    checksums: dict[str, str] = field(default_factory=dict)
    # the runtime that made the vectors (torch, onnx, onnx-int8); "" in indexes written before
    # it was recorded
    embedding_backend: str = ""


@dataclass(slots=True)
class IndexSnapshot:
    name: str
    manifest: Manifest
    documents: dict[str, Document]
    chunks: list[Chunk]
    embeddings: np.ndarray
    vectors: faiss.Index
    lexical: LexicalIndex

    @property
    def sources(self) -> dict[str, str]:
        """source -> doc_id, to find the old version of a changed file."""
        return {doc.source: doc.doc_id for doc in self.documents.values()}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_jsonl(path: Path, rows: Iterator[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def _fsync_tree(path: Path) -> None:
    for p in sorted(path.rglob("*")):
        if p.is_file():
            with p.open("rb") as fh:
                os.fsync(fh.fileno())
    for d in [path, *[p for p in path.rglob("*") if p.is_dir()]]:
        _fsync_dir(d)


class IndexStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def current_file(self) -> Path:
        return self.root / "CURRENT"

    @property
    def snapshots_dir(self) -> Path:
        return self.root / "snapshots"

    def exists(self) -> bool:
        return self.current_file.is_file()

    def current_name(self) -> str:
        try:
            name = self.current_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise IndexNotFoundError(
                f"no index at {self.root}: build one with `ragqa ingest PATH...`"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            msg = f"{self.current_file} is unreadable ({exc}); {_REBUILD_HINT}"
            raise IndexLoadError(msg) from None
        if not name or "/" in name or name.startswith("."):
            raise IndexLoadError(f"{self.current_file} is corrupt; {_REBUILD_HINT}")
        return name

    @contextlib.contextmanager
    def lock(self, wait: bool = True) -> Iterator[None]:
        """Serialise writers: a second ingestion waits (or fails) instead of racing."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as fh:
            flags = fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB
            try:
                fcntl.flock(fh.fileno(), flags)
            except BlockingIOError:
                raise RuntimeError(f"another ingestion holds {self.root / '.lock'}") from None
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    # ----------------------------------------------------------------- reading
    def read_manifest(self, name: str | None = None) -> Manifest:
        name = name or self.current_name()
        path = self.snapshots_dir / name / "manifest.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise IndexLoadError(f"{path} is missing; {_REBUILD_HINT}") from None
        except (OSError, ValueError) as exc:
            raise IndexLoadError(f"{path} is corrupt ({exc}); {_REBUILD_HINT}") from None
        version = data.get("format_version") if isinstance(data, dict) else None
        if version != FORMAT_VERSION:
            raise IndexLoadError(
                f"{path} was written by an incompatible version of ragqa (index format "
                f"{version!r}, this version reads {FORMAT_VERSION}); {_REBUILD_HINT}"
            )
        # fields added later are optional and unknown ones are ignored: a change that old
        # versions cannot read bumps FORMAT_VERSION instead
        known = {f.name for f in fields(Manifest)}
        try:
            return Manifest(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise IndexLoadError(f"{path} is corrupt ({exc}); {_REBUILD_HINT}") from None

    def load(self) -> IndexSnapshot:
        """Load the live snapshot. If an ingestion publishes (and prunes) while this reads, the
        snapshot being read may vanish: then the newer one is loaded instead."""
        for _ in range(4):
            name = self.current_name()
            try:
                return self._load(name)
            except IndexLoadError:
                if self.current_name() == name:
                    raise
        return self._load(self.current_name())

    def _load(self, name: str) -> IndexSnapshot:
        manifest = self.read_manifest(name)
        folder = self.snapshots_dir / name
        for rel, expected in manifest.checksums.items():
            path = folder / rel
            if not path.is_file():
                raise IndexLoadError(f"{path} is missing; {_REBUILD_HINT}")
            if _sha256(path) != expected:
                raise IndexLoadError(f"{path} is corrupt (checksum mismatch); {_REBUILD_HINT}")
        try:
            return self._read_snapshot(name, manifest, folder)
        except IndexLoadError:
            raise
        except Exception as exc:  # any parse failure of a file that passed its checksum
            msg = f"index at {folder} cannot be read ({exc}); {_REBUILD_HINT}"
            raise IndexLoadError(msg) from None

    def _read_snapshot(self, name: str, manifest: Manifest, folder: Path) -> IndexSnapshot:
        documents: dict[str, Document] = {}
        with (folder / "documents.jsonl").open(encoding="utf-8") as fh:
            for line in fh:
                doc = Document.from_dict(json.loads(line))
                documents[doc.doc_id] = doc
        chunks: list[Chunk] = []
        with (folder / "chunks.jsonl").open(encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                text = documents[row["doc_id"]].text[row["start"] : row["end"]]
                chunks.append(Chunk(row["chunk_id"], row["doc_id"], row["start"], row["end"], text))
        embeddings = np.load(folder / "embeddings.npy", allow_pickle=False)
        vectors = vector_index.load_index(folder / "vectors.faiss")
        lexical = LexicalIndex.load(folder / "bm25", len(chunks))
        problems = []
        if len(documents) != manifest.n_documents:
            problems.append(f"{len(documents)} documents, manifest says {manifest.n_documents}")
        if len(chunks) != manifest.n_chunks or embeddings.shape != (
            len(chunks),
            manifest.dimension,
        ):
            problems.append(f"embeddings {embeddings.shape} for {len(chunks)} chunks")
        if vectors.ntotal != len(chunks) or vectors.d != manifest.dimension:
            problems.append(f"FAISS index holds {vectors.ntotal} vectors of dimension {vectors.d}")
        if problems:
            raise IndexLoadError(f"index at {folder} is inconsistent: {'; '.join(problems)}")
        return IndexSnapshot(name, manifest, documents, chunks, embeddings, vectors, lexical)

    # ----------------------------------------------------------------- writing
    def write(
        self,
        documents: dict[str, Document],
        chunks: list[Chunk],
        embeddings: np.ndarray,
        *,
        embedding_model: str,
        index_kind: str,
        chunk_tokens: int,
        chunk_overlap_sentences: int,
        embedding_backend: str = "",
    ) -> IndexSnapshot:
        """Write a complete new snapshot and make it live atomically. Call under :meth:`lock`."""
        self.snapshots_dir.mkdir(parents=True, exist_ok=True)
        self._remove_partial_snapshots()
        # sortable to the microsecond (pruning keeps the newest), unique by the random suffix
        now = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}"
        name = stamp + "-" + uuid.uuid4().hex[:8]
        tmp = self.snapshots_dir / f".tmp-{name}"
        tmp.mkdir()
        try:
            _write_jsonl(tmp / "documents.jsonl", (d.to_dict() for d in documents.values()))
            _write_jsonl(
                tmp / "chunks.jsonl",
                (
                    {"chunk_id": c.chunk_id, "doc_id": c.doc_id, "start": c.start, "end": c.end}
                    for c in chunks
                ),
            )
            np.save(tmp / "embeddings.npy", embeddings.astype(np.float32), allow_pickle=False)
            vectors = vector_index.build_index(embeddings, index_kind)
            vector_index.save_index(vectors, tmp / "vectors.faiss")
            lexical = LexicalIndex.build(
                [index_text(documents[c.doc_id].title, c.text) for c in chunks]
            )
            lexical.save(tmp / "bm25")
            manifest = Manifest(
                format_version=FORMAT_VERSION,
                embedding_model=embedding_model,
                dimension=int(embeddings.shape[1]),
                index_kind=index_kind,
                n_documents=len(documents),
                n_chunks=len(chunks),
                chunk_tokens=chunk_tokens,
                chunk_overlap_sentences=chunk_overlap_sentences,
                embedding_backend=embedding_backend,
                checksums={
                    str(p.relative_to(tmp)): _sha256(p)
                    for p in sorted(tmp.rglob("*"))
                    if p.is_file()
                },
            )
            (tmp / "manifest.json").write_text(json.dumps(asdict(manifest), indent=2), "utf-8")
            _fsync_tree(tmp)
            final = self.snapshots_dir / name
            tmp.rename(final)
            _fsync_dir(self.snapshots_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._publish(name)
        self._prune(keep=name)
        return IndexSnapshot(
            name, manifest, dict(documents), list(chunks), embeddings, vectors, lexical
        )

    def _publish(self, name: str) -> None:
        tmp = self.root / f".CURRENT.{uuid.uuid4().hex[:8]}"
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(name + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.current_file)
        _fsync_dir(self.root)

    def _remove_partial_snapshots(self) -> None:
        for p in self.snapshots_dir.glob(".tmp-*"):
            shutil.rmtree(p, ignore_errors=True)
        for p in self.root.glob(".CURRENT.*"):
            p.unlink(missing_ok=True)

    def _prune(self, keep: str) -> None:
        """Keep the live snapshot and the one before it (a reader may still be loading it)."""
        names = sorted(p.name for p in self.snapshots_dir.iterdir() if not p.name.startswith("."))
        old = [n for n in names if n != keep]
        for n in old[: max(0, len(old) - (KEEP_SNAPSHOTS - 1))]:
            shutil.rmtree(self.snapshots_dir / n, ignore_errors=True)
