"""The reader's training data: every answer stands at its offsets; the split is by article."""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import pytest

from qa.reader_data import (
    DEFAULT_BBC_DIR,
    QAExample,
    TrainingDataError,
    balance_year_questions,
    is_held_out,
    is_year_question,
    load_all_examples,
    load_examples,
    load_written_examples,
)
from qa.types import Passage

from .conftest import SHARED

BBC = SHARED / "data" / "bbc"


def _need_bbc() -> None:
    if not BBC.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{BBC} is missing: CI runs with ../shared beside the clone")
        pytest.skip("the BBC corpus (../shared/data/bbc) is not here")


def test_every_handwritten_answer_is_an_exact_span_in_its_context() -> None:
    _need_bbc()
    assert DEFAULT_BBC_DIR.resolve() == BBC.resolve()
    examples = load_examples(BBC)  # raises on the first answer not at its offsets
    assert len(examples) >= 6000
    for ex in examples:
        for start, text in ex.answers:
            assert ex.context[start : start + len(text)] == text
    unanswerable = sum(not ex.answerable for ex in examples)
    assert 0.15 * len(examples) <= unanswerable <= 0.4 * len(examples)
    assert len({ex.id for ex in examples}) == len(examples), "ids are unique"
    types = Counter(ex.qtype for ex in examples)
    assert {"who", "when", "where", "what", "how_many"} <= set(types)


def test_held_out_split_is_by_article_and_stable() -> None:
    articles = [f"sport/{i:03d}.txt" for i in range(1, 400)]
    held = [a for a in articles if is_held_out(a)]
    assert 0.05 * len(articles) < len(held) < 0.15 * len(articles)
    assert held == [a for a in articles if is_held_out(a)]


def test_copies_of_an_article_fall_on_the_same_side_of_the_split() -> None:
    # the BBC corpus holds some articles twice under other names (tech/003.txt is
    # tech/036.txt): a split by file name would train on one copy and score the other
    sides: dict[str, set[bool]] = {}
    for ex in load_examples():
        text = (DEFAULT_BBC_DIR / ex.article).read_text(encoding="utf-8")
        sides.setdefault(" ".join(text.split()), set()).add(is_held_out(ex.split_key))
    assert all(len(s) == 1 for s in sides.values())
    assert not is_held_out("tech/036.txt") and is_held_out("tech/003.txt")  # a path split fails


def _write(path: Path, record: dict) -> Path:
    path.write_text(json.dumps(record) + "\n", "utf-8")
    return path


def test_misplaced_answer_is_refused_with_file_and_line(tmp_path: Path) -> None:
    bbc = tmp_path / "bbc"
    (bbc / "tech").mkdir(parents=True)
    text = "Title\n\nAda Lovelace wrote the first program.\n"
    (bbc / "tech" / "001.txt").write_text(text, "utf-8")
    good = {
        "id": "t1",
        "article": "tech/001.txt",
        "context_start": 7,
        "context_end": len(text),
        "question": "Who wrote the first program?",
        "answers": [{"text": "Ada Lovelace", "start": 7}],
        "type": "who",
    }
    (ex,) = load_examples(bbc, [_write(tmp_path / "ok.jsonl", good)])
    assert ex == QAExample(
        "t1", "tech/001.txt", good["question"], ex.context, ((0, "Ada Lovelace"),), "who", "Title"
    )
    bad = {**good, "answers": [{"text": "Ada Lovelace", "start": 8}]}
    with pytest.raises(TrainingDataError, match=r"bad\.jsonl:1: answer 'Ada Lovelace'"):
        load_examples(bbc, [_write(tmp_path / "bad.jsonl", bad)])
    # a negative offset is refused even where Python's slicing would find the answer there
    negative = {**good, "answers": [{"text": "Ada Lovelace", "start": 7 - len(text)}]}
    with pytest.raises(TrainingDataError, match=f"not at offset {7 - len(text)} "):
        load_examples(bbc, [_write(tmp_path / "neg.jsonl", negative)])
    outside = {**good, "context_end": 15}
    with pytest.raises(TrainingDataError, match="outside its context"):
        load_examples(bbc, [_write(tmp_path / "out.jsonl", outside)])
    with pytest.raises(TrainingDataError, match="no article"):
        load_examples(bbc, [_write(tmp_path / "gone.jsonl", {**good, "article": "tech/9.txt"})])
    with pytest.raises(TrainingDataError, match=r"typo\.jsonl:1: unknown question type 'whose'"):
        load_examples(bbc, [_write(tmp_path / "typo.jsonl", {**good, "type": "whose"})])


def test_features_point_at_the_answer_tokens_or_cls() -> None:
    from transformers import AutoTokenizer

    from embeddings import resolve_model_path
    from qa.train_reader import TrainConfig, featurize

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("all-MiniLM-L6-v2"))
    context = "Filler sentence number one. " * 30 + "Ada Lovelace wrote the first program."
    start = context.index("Ada")
    answerable = QAExample("a", "x", "Who wrote it?", context, ((start, "Ada Lovelace"),), "who")
    unanswerable = QAExample("b", "x", "Who painted it?", context, (), "who")
    cfg = TrainConfig(max_seq_len=64, stride=16)
    features = featurize([answerable, unanswerable], tokenizer, cfg)
    hits = [f for f in features if f.start > 0]
    assert hits, "the window holding the answer is labelled"
    for f in hits:
        assert tokenizer.decode(f.input_ids[f.start : f.end + 1]) == "ada lovelace"
    assert len(features) > 2 and sum(f.start == 0 and f.end == 0 for f in features) >= 2


def test_every_written_answer_is_an_exact_span_and_ids_are_unique_across_sources() -> None:
    _need_bbc()
    written = load_written_examples()  # raises on the first answer not at its offsets
    for ex in written:
        assert ex.title and ex.article.startswith("written/")
        for start, text in ex.answers:
            assert ex.context[start : start + len(text)] == text
    if written:
        unanswerable = sum(not ex.answerable for ex in written)
        # both kinds well represented (SQuAD 2.0's training set has a third unanswerable)
        assert 0.1 * len(written) <= unanswerable <= 0.5 * len(written)
    everything = load_all_examples(BBC)
    assert len(everything) == len(load_examples(BBC)) + len(written)
    assert len({ex.id for ex in everything}) == len(everything), "ids are unique"


def test_written_record_errors_name_file_line_and_question(tmp_path: Path) -> None:
    text = "The Kuiper belt is a disc of icy bodies beyond the orbit of Neptune."
    good = {
        "id": "w-t-001",
        "title": "Kuiper belt",
        "text": text,
        "questions": [
            {
                "id": "w-t-001-q1",
                "question": "Beyond which planet does it lie?",
                "answers": [{"text": "Neptune", "start": text.index("Neptune")}],
                "type": "which",
            },
            {"id": "w-t-001-q2", "question": "Who found it?", "answers": [], "type": "who"},
        ],
    }
    first, second = load_written_examples([_write(tmp_path / "ok.jsonl", good)])
    assert first.context == text and first.answers == ((text.index("Neptune"), "Neptune"),)
    assert first.split_key == second.split_key == "kuiper belt" and not second.answerable
    moved = json.loads(json.dumps(good))
    moved["questions"][0]["answers"][0]["start"] += 1
    with pytest.raises(TrainingDataError, match=r"bad\.jsonl:1: w-t-001-q1: answer 'Neptune'"):
        load_written_examples([_write(tmp_path / "bad.jsonl", moved)])
    no_text = {k: v for k, v in good.items() if k != "text"}
    with pytest.raises(TrainingDataError, match="missing or invalid field"):
        load_written_examples([_write(tmp_path / "none.jsonl", no_text)])
    with pytest.raises(TrainingDataError, match="empty title, text or question list"):
        load_written_examples([_write(tmp_path / "empty.jsonl", {**good, "questions": []})])
    misspelt = json.loads(json.dumps(good))
    misspelt["questions"][1]["type"] = "How many"
    with pytest.raises(TrainingDataError, match=r"w-t-001-q2: unknown question type 'How many'"):
        load_written_examples([_write(tmp_path / "type.jsonl", misspelt)])


def test_training_run_saves_a_loadable_checkpoint_with_figures_by_source(tmp_path: Path) -> None:
    # a tiny random BERT trained for a few steps: checks the plumbing, not the quality
    from transformers import BertModel

    from qa.readers.transformers_reader import TransformersReader
    from qa.train_reader import TrainConfig, evaluate_held_out, train

    from .conftest import save_tiny_bert

    base = save_tiny_bert(BertModel, tmp_path / "base")
    text = "The Kuiper belt lies beyond Neptune. It was predicted by Kenneth Edgeworth in 1943."
    examples = [
        QAExample(
            f"{source}-{i}",
            f"written/x.jsonl#{i}" if source == "written" else f"tech/{i:03d}.txt",
            question,
            text,
            ((text.index(answer), answer),) if answer else (),
            "other",
            f"{source} article {i}",
        )
        for i in range(12)
        for source in ("bbc", "written")
        for question, answer in (
            ("Who predicted the belt?", "Kenneth Edgeworth"),
            ("When was it predicted?", "1943"),
            ("Who named the belt?", None),
        )
    ]
    cfg = TrainConfig(
        base_model=str(base), epochs=1, batch_size=8, max_seq_len=64, stride=16, held_out_percent=30
    )
    figures = train(tmp_path / "out", cfg, progress=False, examples=examples)
    assert figures["steps"] == math.ceil(figures["train_windows"] / 8)  # type: ignore[operator]
    assert 0 < figures["held_out_questions"] < len(examples)  # type: ignore[operator]
    by_source = figures["held_out_by_source"]
    assert isinstance(by_source, dict) and set(by_source) == {"bbc", "written"}
    assert sum(part["n"] for part in by_source.values()) == figures["held_out_questions"]
    saved = json.loads((tmp_path / "out" / "training.json").read_text("utf-8"))
    assert saved["held_out"]["best_f1"] == figures["held_out"]["best_f1"]  # type: ignore[index]
    # the held-out scoring alone (python -m qa.train_reader --evaluate DIR): the same figures
    # from the same reads, and with the other span score the same questions, read again
    dev = [e for e in examples if is_held_out(e.split_key, 30)]
    again_prob, _ = evaluate_held_out(tmp_path / "out", dev)
    assert again_prob == saved["held_out"]
    odds, odds_by_source = evaluate_held_out(tmp_path / "out", dev, "null_odds")
    assert odds["n"] == len(dev) and set(odds_by_source) == {"bbc", "written"}
    assert odds["always_f1"] == again_prob["always_f1"]  # the same best spans, scored otherwise
    out = TransformersReader(str(tmp_path / "out")).read(
        "Who predicted it?", [Passage("p:0", "p", "", "", 0, len(text), text, 1.0)]
    )
    assert all(text[s.start : s.end] == s.text for s in out.spans)
    # a saved checkpoint (float16) is a valid starting point for more training
    again = TrainConfig(**{**asdict(cfg), "base_model": str(tmp_path / "out"), "epochs": 0.5})
    more = train(tmp_path / "more", again, progress=False, examples=examples)
    assert more["steps"] == int(math.ceil(figures["train_windows"] / 8) * 0.5)  # type: ignore[operator]
    assert (tmp_path / "more" / "model.safetensors").is_file()


def test_written_passages_have_unique_titles_and_copy_nothing_from_squad() -> None:
    # the held-out split goes by title, and SQuAD is for measuring only: no written passage may
    # share eight words in a row with a SQuAD dev paragraph
    squad = sorted((SHARED / "data" / "squad").glob("*.json"))
    if not squad:
        if os.environ.get("CI") == "true":
            pytest.fail("../shared/data/squad is missing: CI runs with ../shared beside the clone")
        pytest.skip("the SQuAD dev files (../shared/data/squad) are not here")
    passages = {ex.article: (ex.title, ex.context) for ex in load_written_examples()}
    titles = Counter(" ".join(title.lower().split()) for title, _ in passages.values())
    assert not [t for t, n in titles.items() if n > 1], "one title per written passage"

    def grams(text: str, n: int = 8) -> set[tuple[str, ...]]:
        words = re.findall(r"\w+", text.lower())
        return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}

    squad_grams: set[tuple[str, ...]] = set()
    for path in squad:
        for article in json.loads(path.read_text("utf-8"))["data"]:
            for paragraph in article["paragraphs"]:
                squad_grams |= grams(paragraph["context"])
    copied = [a for a, (_, text) in passages.items() if grams(text) & squad_grams]
    assert not copied, f"written passages sharing text with SQuAD dev: {copied[:5]}"


def test_year_twins_are_cut_to_the_corpus_share_of_unanswerable_questions() -> None:
    text = "The bridge opened in 1972. A second span was added in 1981 by the city."

    def ex(i: int, question: str, answer: str | None) -> QAExample:
        answers = ((text.index(answer), answer),) if answer else ()
        return QAExample(f"q{i}", "written/x.jsonl#1", question, text, answers, "other", "Bridge")

    answerable_years = [ex(i, "What opened in 1972?", "The bridge") for i in range(4)]
    year_twins = [ex(10 + i, "Who closed the bridge in 1981?", None) for i in range(8)]
    other = [ex(30 + i, "Who painted the bridge?", None) for i in range(4)] + [
        ex(40 + i, "Who added a span?", "the city") for i in range(8)
    ]
    # a year the passage never states is a plain unanswerable question, not a twin
    unstated = [ex(50, "What opened in 1990?", None)]
    examples = answerable_years + year_twins + other + unstated
    assert is_year_question(year_twins[0]) and not is_year_question(unstated[0])
    kept = balance_year_questions(examples)
    # 13 of 25 unanswerable overall: 4 answerable year questions keep round(4 * 13 / 12) twins
    assert sum(e in year_twins for e in kept) == 4
    assert [e for e in kept if e not in year_twins] == [e for e in examples if e not in year_twins]
    positions = [examples.index(e) for e in kept]
    assert positions == sorted(positions)  # order kept
    # few twins already: nothing goes
    assert balance_year_questions(answerable_years + year_twins[:2] + other) == (
        answerable_years + year_twins[:2] + other
    )
