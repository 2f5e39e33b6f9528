from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from qa import store as store_module
from qa.ingest import Ingestor
from qa.store import IndexLoadError, IndexNotFoundError, IndexStore

from .conftest import SEEDS, FakeEmbedder


def _ingest(settings, embedder, *paths, rebuild=False):  # type: ignore[no-untyped-def]
    return Ingestor(settings, embedder).ingest(list(paths), rebuild=rebuild, progress=False)


def _corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "articles"
    shutil.copytree(SEEDS, folder)
    return folder


def test_ingest_builds_index_with_exact_chunk_offsets(tmp_path, fake_settings, fake_embedder):
    report = _ingest(fake_settings, fake_embedder, _corpus(tmp_path))
    assert report.n_documents == 2 and report.written and not report.errors
    snap = IndexStore(fake_settings.index_dir).load()
    assert len(snap.chunks) == report.n_chunks == snap.vectors.ntotal
    for chunk in snap.chunks:
        assert snap.documents[chunk.doc_id].text[chunk.start : chunk.end] == chunk.text


def test_reingest_unchanged_does_nothing(tmp_path, fake_settings, fake_embedder):
    folder = _corpus(tmp_path)
    _ingest(fake_settings, fake_embedder, folder)
    name = IndexStore(fake_settings.index_dir).current_name()
    fake_embedder.encoded.clear()
    report = _ingest(fake_settings, fake_embedder, folder)
    assert not report.written and report.unchanged == 2 and not fake_embedder.encoded
    assert IndexStore(fake_settings.index_dir).current_name() == name


def test_new_article_is_the_only_one_embedded(tmp_path, fake_settings, fake_embedder):
    folder = _corpus(tmp_path)
    first = _ingest(fake_settings, fake_embedder, folder)
    (folder / "new.txt").write_text(
        "A new article\n\nThe museum opened on Monday in Leeds.", "utf-8"
    )
    fake_embedder.encoded.clear()
    report = _ingest(fake_settings, fake_embedder, folder)
    assert report.added and len(report.added) == 1 and report.unchanged == 2
    assert report.chunks_embedded == 1 and len(fake_embedder.encoded) == 1
    assert report.n_chunks == first.n_chunks + 1


def test_changed_file_replaces_its_chunks(tmp_path, fake_settings, fake_embedder):
    folder = _corpus(tmp_path)
    path = folder / "001_774e1130bc203f29.txt"
    _ingest(fake_settings, fake_embedder, folder)
    old = IndexStore(fake_settings.index_dir).load()
    old_id = next(d.doc_id for d in old.documents.values() if d.source.endswith(path.name))
    path.write_text("Changed title\n\nThe congress moved to Lyon in 2022.", "utf-8")
    report = _ingest(fake_settings, fake_embedder, folder)
    assert report.replaced == [old_id]
    snap = IndexStore(fake_settings.index_dir).load()
    assert old_id not in snap.documents and len(snap.documents) == 2
    assert all(c.doc_id != old_id for c in snap.chunks)
    assert any("Lyon" in c.text for c in snap.chunks)
    # the embeddings kept for the unchanged article are the same rows as before
    kept = [i for i, c in enumerate(old.chunks) if c.doc_id != old_id]
    np.testing.assert_array_equal(snap.embeddings[: len(kept)], old.embeddings[kept])


def test_broken_file_is_skipped_and_the_rest_ingested(tmp_path, fake_settings, fake_embedder):
    folder = _corpus(tmp_path)
    (folder / "broken.json").write_text("{oops", "utf-8")
    report = _ingest(fake_settings, fake_embedder, folder)
    assert report.n_documents == 2
    assert [e.path.endswith("broken.json") for e in report.errors] == [True]


def test_rebuild_starts_over(tmp_path, fake_settings, fake_embedder):
    folder = _corpus(tmp_path)
    _ingest(fake_settings, fake_embedder, folder)
    one = folder / "000_2af23a0a538a6775.txt"
    report = _ingest(fake_settings, fake_embedder, one, rebuild=True)
    assert report.n_documents == 1


def test_crash_while_writing_keeps_previous_index(
    tmp_path, fake_settings, fake_embedder, monkeypatch
):
    folder = _corpus(tmp_path)
    _ingest(fake_settings, fake_embedder, folder)
    store = IndexStore(fake_settings.index_dir)
    before = store.current_name()
    (folder / "new.txt").write_text("Another\n\nSomething happened in Paris.", "utf-8")

    def explode(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError("disk full")

    monkeypatch.setattr(store_module.vector_index, "save_index", explode)
    with pytest.raises(OSError, match="disk full"):
        _ingest(fake_settings, fake_embedder, folder)
    assert store.current_name() == before
    assert len(store.load().documents) == 2
    assert not list(store.snapshots_dir.glob(".tmp-*"))
    monkeypatch.undo()
    assert _ingest(fake_settings, fake_embedder, folder).n_documents == 3


def test_old_snapshots_are_pruned(tmp_path, fake_settings, fake_embedder):
    folder = _corpus(tmp_path)
    for i in range(4):
        (folder / f"n{i}.txt").write_text(f"T{i}\n\nBody number {i}.", "utf-8")
        _ingest(fake_settings, fake_embedder, folder)
    names = [p.name for p in IndexStore(fake_settings.index_dir).snapshots_dir.iterdir()]
    assert len(names) == store_module.KEEP_SNAPSHOTS


def test_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(IndexNotFoundError, match="ragqa ingest"):
        IndexStore(tmp_path / "nothing").load()


def test_corrupt_and_incompatible_index_detected(tmp_path, fake_settings, fake_embedder):
    _ingest(fake_settings, fake_embedder, _corpus(tmp_path))
    store = IndexStore(fake_settings.index_dir)
    folder = store.snapshots_dir / store.current_name()
    faiss_file = folder / "vectors.faiss"
    data = faiss_file.read_bytes()
    faiss_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexLoadError, match=r"vectors\.faiss is corrupt.*--rebuild"):
        store.load()
    faiss_file.write_bytes(data)
    store.load()
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["format_version"] = 99
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexLoadError, match="incompatible version"):
        store.load()


def test_embedding_model_mismatch_detected(tmp_path, fake_settings, fake_embedder):
    _ingest(fake_settings, fake_embedder, _corpus(tmp_path))
    other = fake_settings.model_copy(update={"embedding_model": "some/other-model"})
    with pytest.raises(IndexLoadError, match="built with embedding model 'fake-embedder'"):
        _ingest(other, FakeEmbedder(), _corpus(tmp_path / "x"))


def test_embedding_backend_is_recorded_and_an_int8_mix_warned(
    tmp_path, fake_settings, fake_embedder, caplog
):
    onnx = fake_settings.model_copy(update={"embedding_backend": "onnx"})
    _ingest(onnx, fake_embedder, _corpus(tmp_path))
    assert IndexStore(onnx.index_dir).load().manifest.embedding_backend == "onnx"

    # torch and onnx make the same vectors: no warning
    with caplog.at_level("WARNING", logger="qa.ingest"):
        _ingest(onnx.model_copy(update={"embedding_backend": "torch"}), fake_embedder, SEEDS)
    assert "backend" not in caplog.text

    with caplog.at_level("WARNING", logger="qa.ingest"):
        _ingest(onnx.model_copy(update={"embedding_backend": "onnx-int8"}), fake_embedder, SEEDS)
    assert "embedded with the onnx backend but RAGQA_EMBEDDING_BACKEND is onnx-int8" in (
        caplog.text
    )
