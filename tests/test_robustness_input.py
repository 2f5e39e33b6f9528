"""Hostile and odd input: every case gets a clear 4xx or a clean skip, and the service stays up.

Questions go through the real pipeline (packaged MiniLM, the shipped reader, the seeds index):
the tokenizers and the reader must cope with whatever a client sends.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from qa.ingest import Ingestor
from qa.settings import Settings
from qa.store import IndexStore

from .conftest import FakeEmbedder

GOOD_QUESTION = "How many members does IFLA have?"


@pytest.fixture(scope="module")
def client(seeds_pipeline) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    app = create_app(seeds_pipeline.settings, pipeline=seeds_pipeline)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _still_healthy(client: TestClient) -> None:
    assert client.get("/health").json()["status"] == "ok"
    r = client.post("/ask", json={"question": GOOD_QUESTION})
    assert r.status_code == 200 and r.json()["answer"] == "more than 1500"


ANSWERED = [
    "Wer hat die Konferenz 2019 geschlossen?",
    "谁主持了2019年的会议？",
    "من أغلق مؤتمر 2019؟",
    "Кто закрыл конференцию 2019 года?",
    "🤔📚 who closed the conference? 🎉🎉",
    "Who\u0000 closed\u0007 the\u001b[31m conference\u202e?",
    "\ufeff\u200b\u200d Who closed the conference?",
    "\ud7ff\ue000\U0010ffff?",
    "a" * 1000,
    " ".join(["IFLA"] * 199),
    "<script>alert(1)</script> Who closed the conference?",
    "Who closed the conference?' OR 1=1; --",
    "%s%s%s%n {0} ${jndi:ldap://x} {{7*7}}",
]


@pytest.mark.parametrize("question", ANSWERED)
def test_odd_questions_are_answered_or_abstained(client, question) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/ask", json={"question": question})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["answer"] is None or isinstance(body["answer"], str)
    for c in body["citations"]:
        text = client.get(f"/documents/{c['doc_id']}").json()["text"]
        assert text[c["start"] : c["end"]] == body["answer"]


REFUSED: list[tuple[bytes, int | tuple[int, ...]]] = [
    (b'{"question": ""}', 422),
    (b'{"question": "   \\n\\t\\u3000 "}', 422),
    (json.dumps({"question": "x" * 1001}).encode(), 422),
    (json.dumps({"question": "x" * 100_000}).encode(), 413),  # 100 kB: over the body limit
    (b'{"question": "\xff\xfe\x00 binary"}', (400, 422)),  # not UTF-8
    (bytes(range(256)), 422),
    (b"\x00" * 1000, 422),
    (b'{"question": "unterminated', 422),
    (b'{"question": "Who?",}', 422),
    (b"[" * 30_000 + b"]" * 30_000, 400),  # nested deeper than any parser should follow
    (b'{"question": ' + b"[" * 5_000 + b"]" * 5_000 + b"}", 400),
    (b'{"question": "Who?", "top_k": 1e999}', 422),
    (b'{"question": "Who?", "top_k": -1}', 422),
    (b'{"question": {"$gt": ""}}', 422),
    (b'{"question": null}', 422),
    (b"null", 422),
    (b'"just a string"', 422),
    (b'{"question": "Who?", "question": ""}', 422),  # the last duplicate wins
    (b"", 422),
]


@pytest.mark.parametrize(("body", "status"), REFUSED)
def test_bad_requests_get_a_clear_4xx(client, body, status) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/ask", content=body, headers={"content-type": "application/json"})
    assert r.status_code in (status if isinstance(status, tuple) else (status,)), r.text[:300]
    assert "detail" in r.json()


def test_huge_bodies_are_refused_even_without_content_length(client) -> None:  # type: ignore[no-untyped-def]
    def chunks() -> Iterator[bytes]:
        yield b'{"question": "'
        for _ in range(200):
            yield b"a" * 10_000
        yield b'"}'

    r = client.post("/ask", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "RAGQA_MAX_BODY_BYTES" in r.json()["detail"]
    r = client.post("/ask", content=b"{}", headers={"content-length": "99999999999"})
    assert r.status_code in (400, 413)


def test_wrong_content_types_and_methods(client) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/ask", content=b"question=Who", headers={"content-type": "text/plain"})
    assert r.status_code == 422
    r = client.post(
        "/ask",
        content=b"question=Who",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 422
    assert client.get("/ask").status_code == 405
    assert client.delete("/documents/x").status_code == 405
    assert client.get("/documents?limit=0").status_code == 422
    assert client.get("/documents?offset=-1").status_code == 422
    assert client.get("/documents?limit=abc").status_code == 422
    assert client.get("/documents/" + "a" * 5000).status_code == 404
    assert client.get("/documents/%00%ff..%2f..%2fetc%2fpasswd").status_code == 404
    assert client.get("/nope/../../etc/passwd").status_code == 404


def test_service_is_healthy_after_all_of_it(client) -> None:  # type: ignore[no-untyped-def]
    for body, _ in REFUSED:
        client.post("/ask", content=body, headers={"content-type": "application/json"})
    _still_healthy(client)
    metrics = client.get("/metrics").text
    assert 'ragqa_http_errors_total{route="/ask"}' not in metrics  # no 5xx was counted


# ---------------------------------------------------------------------------- odd documents
def test_odd_documents_are_skipped_cleanly_and_the_rest_indexed(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "good.txt").write_text("A good article\n\nThe library opened in Leeds.", "utf-8")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "blank.md").write_text("\n\n   \n\t\n", "utf-8")
    (folder / "latin1.txt").write_bytes("Caf\xe9 na\xefve r\xe9sum\xe9\n\nBody.".encode("latin-1"))
    (folder / "binary.txt").write_bytes(os.urandom(4096))
    (folder / "nul.json").write_bytes(b'{"title": "x", "text": "\x00\x00"}')
    (folder / "deep.json").write_text("[" * 100_000 + "]" * 100_000, "utf-8")
    (folder / "list.json").write_text('[1, "two", null, {"text": 5}]', "utf-8")
    (folder / "archive.zip").write_bytes(b"PK\x03\x04" + b"\x00" * 100)  # archives: unsupported
    with (folder / "huge.txt").open("wb") as fh:  # 50 MB (sparse): over the size limit
        fh.truncate(50 * 1024 * 1024)
    (folder / "page.html").write_text(
        "<html><head><title>Caf&eacute; &amp; news</title>"
        "<script>document.write('<p>evil</p>'); alert(1)</script>"
        "<style>p{color:red}</style></head><body><nav>Home | About</nav>"
        "<article><h1>Caf&eacute; &amp; news</h1><p>The caf&eacute; opened &mdash; at last "
        "&lt;finally&gt; &#8220;quoted&#8221; &#x1F600;.</p>"
        '<p onclick="alert(2)">Second <b>paragraph</b><script>alert(3)</script>.</p>'
        "</article><footer>Copyright 2024</footer></body></html>",
        "utf-8",
    )
    settings = Settings(
        index_dir=tmp_path / "index",
        embedding_model="fake-embedder",
        chunk_tokens=60,
        max_document_bytes=10_000_000,
    )
    # a folder's unsupported files (the archive) are never opened; named, they are reported
    paths = [folder, folder / "archive.zip"]
    report = Ingestor(settings, FakeEmbedder()).ingest(paths, progress=False)
    skipped = {Path(e.path.split(" record")[0].split(":")[0]).name: e.reason for e in report.errors}
    assert report.n_documents == 2, report
    assert "10,000,000" in skipped["huge.txt"]
    assert "UTF-8" in skipped["latin1.txt"] and "UTF-8" in skipped["binary.txt"]
    assert set(skipped) >= {"empty.txt", "blank.md", "deep.json", "list.json", "archive.zip"}
    assert "unsupported" in skipped["archive.zip"]
    snap = IndexStore(settings.index_dir).load()
    page = next(d for d in snap.documents.values() if d.source.endswith("page.html"))
    assert page.title == "Café & news"
    assert "The café opened — at last <finally> “quoted” 😀." in page.text
    assert "alert" not in page.text and "evil" not in page.text and "color" not in page.text
    assert "Home | About" not in page.text and "Copyright" not in page.text
