from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from qa.pipeline import QAPipeline
from qa.settings import Settings


@pytest.fixture(scope="module")
def client(seeds_pipeline):  # type: ignore[no-untyped-def]
    with TestClient(create_app(seeds_pipeline.settings, pipeline=seeds_pipeline)) as c:
        yield c


def test_ask_answers_with_citations(client, seeds_pipeline) -> None:
    r = client.post("/ask", json={"question": "Who closed the 2019 conference?", "top_k": 5})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"question", "answer", "score", "citations", "passages", "timings_ms"}
    assert body["answer"] == "Rao Quan"
    assert len(body["passages"]) == 5
    for c in body["citations"]:
        doc = client.get(f"/documents/{c['doc_id']}").json()
        assert doc["text"][c["start"] : c["end"]] == body["answer"]
        assert set(c) >= {"doc_id", "title", "source", "start", "end", "snippet"}
    assert body == {
        **seeds_pipeline.ask("Who closed the 2019 conference?").to_dict(),
        "timings_ms": body["timings_ms"],
    }


def test_abstains_with_null(client) -> None:
    body = client.post("/ask", json={"question": "What is the capital of France?"}).json()
    assert body["answer"] is None and body["citations"] == []


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"question": ""}, "empty"),
        ({"question": "   \n\t"}, "empty"),
        ({"question": "x" * 1001}, "limit is 1000"),
        ({"question": 42}, "string"),
        ({"question": ["a"]}, "string"),
        ({}, "question"),
        ({"question": "Who?", "top_k": 0}, "top_k"),
        ({"question": "Who?", "top_k": 51}, "top_k"),
        ({"question": "Who?", "top_k": "many"}, "top_k"),
        ({"question": "Who?", "extra": 1}, "extra"),
    ],
)
def test_bad_input_is_a_clear_4xx(client, payload, fragment) -> None:
    r = client.post("/ask", json=payload)
    assert r.status_code == 422
    assert fragment in str(r.json()["detail"])


def test_invalid_json_and_wrong_content(client) -> None:
    r = client.post("/ask", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON" in str(r.json()["detail"])
    r = client.post("/ask", content=b"\x00\xff\xfe", headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500


def test_documents_and_health(client) -> None:
    listing = client.get("/documents").json()
    assert listing["total"] == 2
    doc_id = listing["documents"][0]["doc_id"]
    doc = client.get(f"/documents/{doc_id}").json()
    assert set(doc) >= {"doc_id", "title", "source", "text"}
    assert client.get("/documents/nope").status_code == 404
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["documents"] == 2 and health["chunks"] > 2
    assert client.get("/docs").status_code == 200
    assert "/ask" in client.get("/openapi.json").json()["paths"]
    page = client.get("/")
    assert page.status_code == 200 and "<textarea" in page.text


def test_no_index_is_503_not_500(tmp_path, seeds_pipeline) -> None:
    settings = Settings(index_dir=tmp_path / "none")
    pipeline = QAPipeline(settings, embedder=seeds_pipeline.embedder, reader=seeds_pipeline.reader)
    with TestClient(create_app(settings, pipeline=pipeline)) as c:
        r = c.post("/ask", json={"question": "Who closed the 2019 conference?"})
        assert r.status_code == 503 and "ragqa ingest" in r.json()["detail"]
        assert c.get("/health").status_code == 503
