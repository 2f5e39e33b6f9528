from __future__ import annotations

from pathlib import Path

import pytest

from qa.readers import PACKAGED_READER_DIR, build_reader
from qa.readers.base import Reader
from qa.readers.heuristic import FEATURES, CandidateScorer, HeuristicReader
from qa.settings import PACKAGED_READER, Settings
from qa.types import Passage

from .conftest import save_tiny_bert

LONG = (
    "The museum in Leeds opened in 1998 after a long campaign. "
    "Its founder, Maria Ellis, raised 4 million pounds from local donors. "
) * 12


def _passage(text: str, i: int = 0) -> Passage:
    return Passage(f"d{i}:0", f"d{i}", "Title", "src", 0, len(text), text, 1.0)


@pytest.fixture(scope="module")
def tiny_qa_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BERT QA model with random weights and the packaged MiniLM tokenizer."""
    from transformers import BertForQuestionAnswering

    return save_tiny_bert(BertForQuestionAnswering, tmp_path_factory.mktemp("tiny-qa"))


@pytest.mark.parametrize("backend", ["onnx-int8", "torch"])
def test_transformers_reader_windows_and_returns_exact_spans(
    tiny_qa_model: Path, tmp_path: Path, backend: str
) -> None:
    settings = Settings(
        reader="transformers",
        reader_model=str(tiny_qa_model),
        reader_backend=backend,
        reader_max_seq_len=64,
        reader_stride=16,
        max_answer_tokens=5,
        embedding_cache_dir=tmp_path,
    )
    reader = build_reader(settings)
    assert isinstance(reader, Reader) and reader.name == "transformers"
    passages = [_passage(LONG, 0), _passage("Short second passage about Leeds.", 1)]
    out = reader.read("Who founded the museum?", passages, top_n=50)
    assert out.spans, "a random model still proposes spans"
    assert 0.0 <= out.no_answer_score <= 1.0
    for span in out.spans:
        assert passages[span.passage_index].text[span.start : span.end] == span.text
        assert span.text == span.text.strip() and 0.0 <= span.score <= 1.0
        assert len(reader.tokenizer(span.text, add_special_tokens=False)["input_ids"]) <= 5 + 2
    scores = [s.score for s in out.spans]
    assert scores == sorted(scores, reverse=True)
    # the long passage is read in several windows: spans come from beyond the first 64 tokens
    assert max(s.start for s in out.spans if s.passage_index == 0) > 300


def test_null_odds_score_is_the_spans_odds_against_no_answer(tiny_qa_model: Path) -> None:
    import numpy as np
    import torch

    from qa.readers.transformers_reader import TransformersReader

    text = "Its founder, Maria Ellis, raised 4 million pounds from local donors in Leeds."
    question = "Who founded the museum?"
    by_prob = TransformersReader(str(tiny_qa_model), n_best=40, max_answer_tokens=40)
    by_odds = TransformersReader(
        str(tiny_qa_model), n_best=40, max_answer_tokens=40, span_score="null_odds"
    )
    prob_spans = by_prob.read(question, [_passage(text)], top_n=1000).spans
    odds_spans = by_odds.read(question, [_passage(text)], top_n=1000).spans
    # one window: the same spans in the same order, only the score differs
    assert [s.text for s in odds_spans] == [s.text for s in prob_spans]
    # either way each span keeps its probability, the confidence the service shows
    assert [s.probability for s in odds_spans] == pytest.approx([s.score for s in prob_spans])
    enc = by_odds.tokenizer(question, text, return_offsets_mapping=True, return_tensors="pt")
    offsets = enc.pop("offset_mapping")[0].tolist()
    with torch.no_grad():
        out = by_odds.model(**enc)
    start, end = out.start_logits[0].numpy(), out.end_logits[0].numpy()
    best = odds_spans[0]
    s = next(i for i, (a, b) in enumerate(offsets) if a == best.start and b > a and i > 0)
    e = next(i for i, (a, b) in enumerate(offsets) if b == best.end and i >= s)
    margin = start[s] + end[e] - start[0] - end[0]
    assert best.score == pytest.approx(1 / (1 + np.exp(-margin)), rel=1e-4)


def test_onnx_reader_runs_windows_side_by_side_and_agrees_with_torch(
    tiny_qa_model: Path, tmp_path: Path
) -> None:
    # windows of different lengths: each ONNX run is unpadded, the batch in PyTorch is padded
    base = Settings(
        reader="transformers",
        reader_model=str(tiny_qa_model),
        reader_max_seq_len=64,
        reader_stride=16,
        max_answer_tokens=5,
        reader_backend="torch",
        reader_quantize=False,
        embedding_cache_dir=tmp_path,
    )
    passages = [_passage(LONG, 0), _passage("Short second passage about Leeds.", 1)]
    question = "Who founded the museum?"
    expected = build_reader(base).read(question, passages, top_n=10)
    reader = build_reader(base.model_copy(update={"reader_backend": "onnx"}))
    got = reader.read(question, passages, top_n=10)
    assert [(s.passage_index, s.start, s.end) for s in got.spans] == [
        (s.passage_index, s.start, s.end) for s in expected.spans
    ]
    assert [s.score for s in got.spans] == pytest.approx([s.score for s in expected.spans], 1e-3)
    assert got.no_answer_score == pytest.approx(expected.no_answer_score, rel=1e-3)


def test_transformers_reader_needs_a_model() -> None:
    with pytest.raises(ValueError, match="RAGQA_READER_MODEL"):
        build_reader(Settings(reader="transformers", reader_model=""))


@pytest.fixture(scope="module")
def shipped_reader() -> Reader:
    """The default reader: the model this project trained, loaded from the repository."""
    settings = Settings()
    assert settings.reader == "transformers" and settings.reader_model == PACKAGED_READER
    return build_reader(settings)


def test_shipped_weights_are_small_safetensors_with_a_model_card() -> None:
    weights = PACKAGED_READER_DIR / "model.safetensors"
    assert weights.is_file() and weights.stat().st_size < 55 * 2**20
    assert (PACKAGED_READER_DIR / "README.md").is_file()
    assert (PACKAGED_READER_DIR / "training.json").is_file()


def test_shipped_reader_returns_exact_spans(shipped_reader: Reader) -> None:
    passages = [_passage(LONG, 0), _passage("The river Aire flows through Leeds to the Ouse.", 1)]
    out = shipped_reader.read("Who founded the museum in Leeds?", passages, top_n=10)
    assert out.spans and 0.0 <= out.no_answer_score <= 1.0
    for span in out.spans:
        assert passages[span.passage_index].text[span.start : span.end] == span.text
        assert 0.0 <= span.score <= 1.0
    assert out.spans[0].text == "Maria Ellis"


def test_heuristic_reader_finds_typed_spans() -> None:
    reader = HeuristicReader()
    p = _passage(LONG)
    for question, expected in [
        ("Who founded the museum in Leeds?", "Maria Ellis"),
        ("When did the Leeds museum open?", "1998"),
        ("How much money did the founder raise?", "4 million pounds"),
    ]:
        out = reader.read(question, [p])
        assert out.spans[0].text == expected, (question, out.spans[:3])
        for span in out.spans:
            assert p.text[span.start : span.end] == span.text


def test_heuristic_model_file_matches_features() -> None:
    model = CandidateScorer.load()
    assert len(model.mean) == len(FEATURES)


def test_each_reader_runtime_and_span_score_has_its_own_threshold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from qa import settings as settings_module

    table = {
        "heuristic": 0.5,
        "transformers": 0.1,
        "transformers/onnx-int8": 0.2,
        "transformers/null_odds": 0.3,
        "transformers/onnx-int8/null_odds": 0.4,
    }
    monkeypatch.setattr(settings_module, "CALIBRATED_THRESHOLDS", table)

    def threshold(**fields: object) -> float:
        return Settings(reader="transformers", **fields).answer_threshold  # type: ignore[arg-type]

    assert Settings(reader="heuristic").answer_threshold == 0.5
    assert threshold(reader_backend="torch", reader_span_score="probability") == 0.1
    assert threshold(reader_backend="onnx-int8", reader_span_score="probability") == 0.2
    assert threshold(reader_backend="torch", reader_span_score="null_odds") == 0.3
    assert threshold(reader_backend="onnx-int8", reader_span_score="null_odds") == 0.4
    # a runtime without an entry takes PyTorch's of the same span score, never the other score's
    assert threshold(reader_backend="onnx", reader_span_score="probability") == 0.1
    assert threshold(reader_backend="onnx", reader_span_score="null_odds") == 0.3
    assert threshold(no_answer_threshold=0.7) == 0.7
