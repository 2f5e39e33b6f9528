"""The ONNX embedding backends: same vectors as sentence-transformers, exported once, safely.

A tiny random BERT with the packaged MiniLM's tokenizer keeps the export fast and hermetic.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from embeddings import Embedder, onnx_export
from embeddings.onnx_backend import UnsupportedModelError
from embeddings.onnx_export import FusionError, cache_folder, ensure_onnx_model, recipe_of

from .conftest import save_tiny_bert

TEXTS = [
    "The central bank raised interest rates by a quarter point on Thursday.",
    "Short.",
    "Chelsea beat Arsenal two-nil in a match that was decided in the last ten minutes, "
    "with both goals coming from set pieces after a long spell of pressure.",
    "Ofcom said the broadband market was more competitive than a year ago.",
]


def _tiny_model(folder: Path, pooling: str = "mean") -> Path:
    from transformers import BertModel

    save_tiny_bert(BertModel, folder)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
        {
            "idx": 2,
            "name": "2",
            "path": "2_Normalize",
            "type": "sentence_transformers.models.Normalize",
        },
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 64}))
    (folder / "1_Pooling").mkdir()
    (folder / "2_Normalize").mkdir()
    flags = {
        f"pooling_mode_{mode}": key == pooling
        for mode, key in [("mean_tokens", "mean"), ("cls_token", "cls"), ("max_tokens", "max")]
    }
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, **flags})
    )
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


def test_onnx_vectors_match_sentence_transformers(tiny: Path, cache: Path) -> None:
    reference = Embedder(str(tiny), backend="torch").encode(TEXTS)
    onnx = Embedder(str(tiny), backend="onnx", cache_dir=cache, batch_size=2)
    vectors = onnx.encode(TEXTS)
    assert vectors.shape == reference.shape == (len(TEXTS), 32)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, reference, atol=1e-4)
    assert onnx.dimension == 32 and onnx.max_tokens == 64
    # length-sorted batching gives every text the vector it gets alone
    for text, row in zip(TEXTS, vectors, strict=True):
        np.testing.assert_allclose(onnx.encode([text])[0], row, atol=1e-5)
    assert onnx.count_tokens(["one two", ""]) == Embedder(str(tiny)).count_tokens(["one two", ""])


def test_export_is_fused(tiny: Path, cache: Path) -> None:
    """ONNX Runtime's transformer optimiser fused every layer (2 in the tiny BERT)."""
    recipe = recipe_of(ensure_onnx_model(tiny, cache, "onnx"))
    assert recipe["exporter"] == "torchscript"
    assert recipe["fused"]["Attention"] == 2
    assert recipe["fused"]["LayerNormalization"] == 4  # not SkipLayerNormalization: slower
    assert recipe["fused"]["EmbedLayerNormalization"] == 1


def test_failed_fusion_falls_back_to_the_plain_export(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object) -> dict[str, int]:
        raise FusionError("no attention block was fused")

    monkeypatch.setattr(onnx_export, "fuse", broken)
    reference = Embedder(str(tiny), backend="torch").encode(TEXTS)
    with caplog.at_level("WARNING", logger="embeddings.onnx_export"):
        vectors = Embedder(str(tiny), backend="onnx", cache_dir=tmp_path).encode(TEXTS)
    np.testing.assert_allclose(vectors, reference, atol=1e-4)
    assert "using the plain export" in caplog.text
    recipe = recipe_of(ensure_onnx_model(tiny, tmp_path, "onnx"))
    assert recipe["fused"] == {} and "no attention" in recipe["fusion_error"]


def test_batches_run_side_by_side_or_one_at_a_time_alike(tiny: Path, cache: Path) -> None:
    from embeddings.onnx_backend import MAX_BATCH_TOKENS, OnnxSentenceEncoder

    parallel = OnnxSentenceEncoder(tiny, cache, "onnx", threads=2)
    serial = OnnxSentenceEncoder(tiny, cache, "onnx", threads=2, batch_parallel=False)
    assert (parallel.workers, serial.workers) == (2, 1)
    texts = TEXTS * 5
    np.testing.assert_allclose(parallel.encode(texts, 3), serial.encode(texts, 3), atol=1e-6)
    ids = [[1] * n for n in (40, 5, 30, 30, 7, 64)]
    batches = parallel.batches(ids, batch_size=4)
    assert sorted(r for b in batches for r in b) == list(range(len(ids)))
    assert batches[0] == [5, 0, 2, 3]  # longest first, at most 4 rows
    huge = [[1] * (MAX_BATCH_TOKENS // 2 + 1)] * 3
    assert parallel.batches(huge, 64) == [[0], [1], [2]]  # the token budget splits them
    assert serial.batches(huge, 64) == [[0, 1, 2]]  # no budget when one batch runs at a time


def test_int8_is_close_and_cached_once(tiny: Path, cache: Path) -> None:
    reference = Embedder(str(tiny), backend="torch").encode(TEXTS)
    vectors = Embedder(str(tiny), backend="onnx-int8", cache_dir=cache).encode(TEXTS)
    cosines = (vectors * reference).sum(axis=1)
    assert cosines.min() > 0.9
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    folder = cache_folder(tiny, cache)
    assert recipe_of(folder / "model_int8.onnx")["int8"]["ops"] == ["MatMul", "Attention"]
    stamp = (folder / "model_int8.onnx").stat().st_mtime_ns
    Embedder(str(tiny), backend="onnx-int8", cache_dir=cache).encode(TEXTS[:1])
    assert (folder / "model_int8.onnx").stat().st_mtime_ns == stamp
    assert not list(folder.glob("*.tmp"))


def test_int8_sessions_ask_for_overflow_free_products(tiny: Path, cache: Path) -> None:
    # without it, CPUs lacking VNNI give different int8 answers (u8s8 products overflow)
    path = ensure_onnx_model(tiny, cache, "onnx-int8")
    options = onnx_export.session(path, threads=1).get_session_options()
    assert options.get_session_config_entry("session.x64quantprecision") == "1"


def test_concurrent_exports_write_one_complete_file(tiny: Path, tmp_path: Path) -> None:
    results: list[Path] = []
    errors: list[BaseException] = []

    def export() -> None:
        try:
            results.append(ensure_onnx_model(tiny, tmp_path, "onnx"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=export) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1
    import onnx

    onnx.checker.check_model(str(results[0]))
    assert not list(results[0].parent.glob("*.tmp"))


def test_cls_pooling_matches(tmp_path: Path) -> None:
    model = _tiny_model(tmp_path / "cls", pooling="cls")
    reference = Embedder(str(model), backend="torch").encode(TEXTS)
    vectors = Embedder(str(model), backend="onnx", cache_dir=tmp_path / "c").encode(TEXTS)
    np.testing.assert_allclose(vectors, reference, atol=1e-4)


def test_clear_errors(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown embedding backend"):
        Embedder("all-MiniLM-L6-v2", backend="tensorrt")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a local folder"):
        Embedder("someone/hub-model", backend="onnx", cache_dir=tmp_path).encode(["x"])
    odd = tmp_path / "odd"
    shutil.copytree(tiny, odd)
    (odd / "modules.json").write_text(
        json.dumps([{"idx": 0, "name": "0", "path": "", "type": "x.Dense"}])
    )
    with pytest.raises(UnsupportedModelError, match="use RAGQA_EMBEDDING_BACKEND=torch"):
        Embedder(str(odd), backend="onnx", cache_dir=tmp_path / "c").encode(["x"])


def test_settings_choose_the_backend(tmp_path: Path) -> None:
    from qa.settings import Settings

    settings = Settings(embedding_backend="onnx-int8", embedding_cache_dir=tmp_path)
    embedder = Embedder.from_settings(settings)
    assert embedder.backend == "onnx-int8" and embedder.cache_dir == tmp_path


def test_reader_onnx_backend_reads_like_torch(tmp_path: Path) -> None:
    from transformers import BertForQuestionAnswering

    from qa.readers.transformers_reader import TransformersReader
    from qa.types import Passage

    folder = save_tiny_bert(BertForQuestionAnswering, tmp_path / "qa")
    passages = [
        Passage(f"d{i}:0", f"d{i}", "t", "s", 0, len(text), text, 1.0)
        for i, text in enumerate(TEXTS)
    ]
    question = "Who beat Arsenal?"
    torch_out = TransformersReader(str(folder), max_seq_len=64, stride=16).read(question, passages)
    onnx_reader = TransformersReader(
        str(folder), max_seq_len=64, stride=16, backend="onnx", cache_dir=tmp_path / "c"
    )
    onnx_out = onnx_reader.read(question, passages)
    assert [(s.passage_index, s.start, s.end) for s in onnx_out.spans] == [
        (s.passage_index, s.start, s.end) for s in torch_out.spans
    ]
    for a, b in zip(onnx_out.spans, torch_out.spans, strict=True):
        assert a.score == pytest.approx(b.score, rel=1e-3, abs=1e-6)
    assert (cache_folder(folder, tmp_path / "c") / "qa.onnx").is_file()
    with pytest.raises(ValueError, match="not a local folder"):
        TransformersReader("someone/qa-model", backend="onnx-int8")
