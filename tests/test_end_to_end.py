"""The seeds indexed with the real embedder and the default reader, asked real questions."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

CONFERENCE_TITLE = "2019 Chinese Library Annual Conference is closed"
# Seeds questions the shipped reader still gets wrong (issue 4). Strict: the day the reader
# answers one, the test fails until its mark is removed.
KNOWN_READER_MISS = pytest.mark.xfail(strict=True, reason="the shipped reader misses it (issue 4)")


def _check_citations(pipeline, answer) -> None:  # type: ignore[no-untyped-def]
    assert answer.citations
    for c in answer.citations:
        doc = pipeline.document(c.doc_id)
        assert doc.text[c.start : c.end].lower() == answer.answer.lower()


def test_who_closed_the_2019_conference(seeds_pipeline) -> None:
    answer = seeds_pipeline.ask("Who closed the 2019 conference?")
    assert answer.answer == "Rao Quan"
    _check_citations(seeds_pipeline, answer)
    first = answer.citations[0]
    assert first.title == CONFERENCE_TITLE
    assert seeds_pipeline.document(first.doc_id).text[first.start : first.end] == "Rao Quan"
    assert set(answer.timings_ms) >= {"embed", "retrieve", "read", "total"}


@pytest.mark.parametrize(
    ("question", "accepted"),
    [
        ("When was the 2019 library conference closed?", {"22 August, 2019", "22 August"}),
        # "around 12" (the passage has "around 12 themes") on CPUs without VNNI until the int8
        # sessions turned on ONNX Runtime's x64 quantisation precision (embeddings.onnx_export)
        ("How many experts gave keynote reports at the 2019 conference?", {"More than 80", "80"}),
        # the reader alone is as sure of the 2019 conference's theme (odds 0.9996 against
        # 0.9991), from the fifth passage; the passage rank decides (passage_rank_weight)
        ("What was the theme of the 2021 IFLA conference?", {"Let's work together for the future"}),
        ("How many members does IFLA have?", {"more than 1500", "1500"}),
        (  # the answers the seeds gold set accepts for this question (seeds-003)
            "Where did the 2019 Chinese Library Annual Conference close?",
            {
                "National Fitness Center, Dongsheng District, Ordos",
                "National Fitness Center",
                "Dongsheng District, Ordos",
                "Ordos",
            },
        ),
        pytest.param(
            "When did the 2021 World Library and Information Congress take place?",
            {"17 August to 19 August", "From 17 August to 19 August"},
            marks=KNOWN_READER_MISS,  # abstains: "17 August to 19 August" scores near 0
        ),
    ],
)
def test_factual_questions(seeds_pipeline, question, accepted) -> None:
    answer = seeds_pipeline.ask(question)
    assert answer.answer in accepted
    _check_citations(seeds_pipeline, answer)


@pytest.mark.parametrize(
    "question",
    ["What is the capital of France?", "Who won the 2018 World Cup?", "How tall is Mount Everest?"],
)
def test_unanswerable_questions_abstain(seeds_pipeline, question) -> None:
    answer = seeds_pipeline.ask(question)
    assert answer.answer is None and answer.citations == []
    assert answer.passages, "passages are still returned for inspection"


def test_cli_ask_json_matches_pipeline(seeds_pipeline) -> None:
    question = "Who closed the 2019 conference?"
    env = {**os.environ, "RAGQA_INDEX_DIR": str(seeds_pipeline.settings.index_dir)}
    out = subprocess.run(
        [sys.executable, "-m", "qa.cli", "ask", question, "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=300,
    )
    data = json.loads(out.stdout)
    expected = seeds_pipeline.ask(question).to_dict()
    assert data["answer"] == expected["answer"]
    assert data["citations"] == expected["citations"]
    assert [p["chunk_id"] for p in data["passages"]] == [
        p["chunk_id"] for p in expected["passages"]
    ]


def test_cli_reports_missing_index(tmp_path) -> None:
    env = {**os.environ, "RAGQA_INDEX_DIR": str(tmp_path / "none")}
    out = subprocess.run(
        [sys.executable, "-m", "qa.cli", "stats"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 1
    assert "no index" in out.stderr and "Traceback" not in out.stderr
