from __future__ import annotations

import re
from collections.abc import Sequence

import pytest
from fastapi.testclient import TestClient

from api.app import STATIC_DIR, create_app
from qa.ingest import Ingestor
from qa.loaders import make_document
from qa.pipeline import QAPipeline
from qa.settings import Settings
from qa.types import Passage, ReaderOutput

from .conftest import FakeEmbedder

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
EVIL_TEXT = 'Before <script>alert(1)</script> the answer & <img src=x onerror="alert(2)"> after.'


@pytest.fixture(scope="module")
def client(seeds_pipeline):  # type: ignore[no-untyped-def]
    with TestClient(create_app(seeds_pipeline.settings, pipeline=seeds_pipeline)) as c:
        yield c


def test_ask_answers_with_citations(client, seeds_pipeline) -> None:
    question = "Who closed the 2019 conference?"
    r = client.post("/ask", json={"question": question, "top_k": 5})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {
        "question",
        "answer",
        "score",
        "confidence",
        "citations",
        "passages",
        "timings_ms",
    }
    assert body["answer"] == "Rao Quan"
    assert len(body["passages"]) == 5
    # the span probability beside the score: a number in [0, 1] for the transformers reader
    assert 0.0 < body["confidence"] <= 1.0
    for c in body["citations"]:
        doc = client.get(f"/documents/{c['doc_id']}").json()
        assert doc["text"][c["start"] : c["end"]] == body["answer"]
        assert set(c) >= {"doc_id", "title", "source", "start", "end", "snippet"}
    assert body == {
        **seeds_pipeline.ask(question).to_dict(),
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
    assert page.status_code == 200 and 'src="/widget.js"' in page.text


def test_no_index_is_503_not_500(tmp_path, seeds_pipeline) -> None:
    settings = Settings(index_dir=tmp_path / "none")
    pipeline = QAPipeline(settings, embedder=seeds_pipeline.embedder, reader=seeds_pipeline.reader)
    with TestClient(create_app(settings, pipeline=pipeline)) as c:
        r = c.post("/ask", json={"question": "Who closed the 2019 conference?"})
        assert r.status_code == 503 and "ragqa ingest" in r.json()["detail"]
        assert c.get("/health").status_code == 503


# ---------------------------------------------------------------------------- the web front end
class _NoReader:
    name = "no-reader"

    def read(self, question: str, passages: Sequence[Passage], top_n: int = 5) -> ReaderOutput:
        return ReaderOutput([])


@pytest.fixture(scope="module")
def web(tmp_path_factory):  # type: ignore[no-untyped-def]
    """The app on a tiny index (fake embedder, no reader): the browser-facing routes."""
    settings = Settings(
        index_dir=tmp_path_factory.mktemp("web") / "index",
        embedding_model="fake-embedder",
        cors_origins=["http://allowed.example"],
    )
    embedder = FakeEmbedder()
    evil = make_document(
        title='Evil <img src=x onerror="alert(3)">',
        text=EVIL_TEXT,
        source="evil.txt",
        given_id="evil",
        url="javascript:alert(4)",
    )
    plain = make_document(
        title="Plain",
        text="Plain text.",
        source="plain.txt",
        given_id="plain",
        url="https://x.org/a",
    )
    Ingestor(settings, embedder).ingest_documents([evil, plain], progress=False)  # type: ignore[arg-type]
    pipeline = QAPipeline(settings, embedder=embedder, reader=_NoReader())  # type: ignore[arg-type]
    with TestClient(create_app(settings, pipeline=pipeline)) as c:
        yield c


def test_documents_json_for_api_clients_is_unchanged(web) -> None:  # type: ignore[no-untyped-def]
    expected = {
        "doc_id": "evil",
        "title": 'Evil <img src=x onerror="alert(3)">',
        "source": "evil.txt",
        "text": EVIL_TEXT,
        "url": "javascript:alert(4)",
        "date": None,
    }
    for accept in (None, "*/*", "application/json", "application/json, text/html"):
        headers = {"accept": accept} if accept else {}
        r = web.get("/documents/evil?start=1&end=2", headers=headers)
        assert r.status_code == 200 and r.json() == expected, accept
        assert r.headers["content-type"] == "application/json"
    assert web.get("/documents/nope", headers={"accept": "application/json"}).status_code == 404
    params = web.get("/openapi.json").json()["paths"]["/documents/{doc_id}"]["get"]["parameters"]
    assert [p["name"] for p in params] == ["doc_id"]
    paths = web.get("/openapi.json").json()["paths"]
    assert not any(p.startswith(("/view", "/widget")) for p in paths)


def test_browsers_are_sent_to_the_readable_page(web) -> None:  # type: ignore[no-untyped-def]
    h = {"accept": BROWSER_ACCEPT}
    r = web.get("/documents/evil?start=7&end=15", headers=h, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/view/evil?start=7&end=15#answer"
    assert "Accept" in r.headers["vary"]
    assert "Accept" in web.get("/documents/evil").headers["vary"]
    r = web.get("/documents/evil", headers=h, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/view/evil"
    r = web.get("/documents/evil?start=-1&end=x", headers=h, follow_redirects=False)
    assert r.headers["location"] == "/view/evil"
    page = web.get("/documents/evil?start=7&end=15", headers=h)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


def test_view_highlights_the_span_and_escapes_everything(web) -> None:  # type: ignore[no-untyped-def]
    start = EVIL_TEXT.index("<script>")
    end = start + len("<script>alert(1)</script>")
    r = web.get(f"/view/evil?start={start}&end={end}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "script-src" not in r.headers["content-security-policy"]
    assert "default-src 'none'" in r.headers["content-security-policy"]
    page = r.text
    assert '<mark id="answer" tabindex="-1">&lt;script&gt;alert(1)&lt;/script&gt;</mark>' in page
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in page
    assert "<h1>Evil &lt;img src=x onerror=&quot;alert(3)&quot;&gt;</h1>" in page
    assert "<script" not in page and "<img" not in page and "javascript:" not in page
    assert 'href="#answer"' in page
    plain = web.get("/view/plain").text
    assert '<a href="https://x.org/a"' in plain and "<mark" not in plain


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?start=5",
        "?start=5&end=5",
        "?start=9&end=3",
        "?start=0&end=99999",
        "?start=-2&end=3",
        "?start=%C2%B2&end=3",
        "?start=a&end=b",
    ],
)
def test_view_ignores_unusable_offsets(web, query) -> None:  # type: ignore[no-untyped-def]
    r = web.get(f"/view/evil{query}")
    assert r.status_code == 200 and "<mark" not in r.text and "Jump to" not in r.text


def test_view_errors_are_pages(web, tmp_path) -> None:  # type: ignore[no-untyped-def]
    r = web.get("/view/nope")
    assert r.status_code == 404 and "Article not found" in r.text
    assert r.headers["content-type"].startswith("text/html")
    settings = Settings(index_dir=tmp_path / "none", embedding_model="fake-embedder")
    app = create_app(settings, QAPipeline(settings, FakeEmbedder(), _NoReader()))  # type: ignore[arg-type]
    with TestClient(app) as c:
        r = c.get("/view/anything")
        assert r.status_code == 503 and "ragqa ingest" in r.text
        assert c.get("/documents/anything", headers={"accept": BROWSER_ACCEPT}).status_code == 503


def test_chat_page_and_widget_are_served_self_contained(web) -> None:  # type: ignore[no-untyped-def]
    page = web.get("/")
    assert page.status_code == 200
    assert '<script src="/widget.js" data-mode="page"' in page.text
    assert "<script>" not in page.text  # no inline code: the CSP forbids it
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    widget = web.get("/widget.js")
    assert widget.status_code == 200
    assert widget.headers["content-type"].startswith("text/javascript")
    css = web.get("/static/chat.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert web.get("/static/style.css").status_code == 200
    # small enough to load instantly, and nothing fetched from elsewhere (no CDN, no fonts)
    total = sum(len(b) for b in (page.content, widget.content, css.content))
    assert total < 60_000, total
    for name in ("index.html", "widget.js", "chat.css", "style.css"):
        text = (STATIC_DIR / name).read_text()
        external = set(re.findall(r"https?://[^\s\"')]+", text)) - {"http://www.w3.org/2000/svg"}
        assert not [u for u in external if "HOST" not in u], (name, external)
        assert "@import" not in text and "@font-face" not in text
    # the widget inserts service data as text only
    source = (STATIC_DIR / "widget.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in source, sink


def test_cors_lets_only_the_named_sites_embed_the_widget(web) -> None:  # type: ignore[no-untyped-def]
    def preflight(origin: str):  # type: ignore[no-untyped-def]
        return web.options(
            "/ask",
            headers={
                "origin": origin,
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type",
            },
        )

    ok = preflight("http://allowed.example")
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "http://allowed.example"
    assert "access-control-allow-origin" not in preflight("http://evil.example").headers
    r = web.post("/ask", json={"question": "Plain?"}, headers={"origin": "http://allowed.example"})
    assert (
        r.status_code == 200
        and r.headers["access-control-allow-origin"] == "http://allowed.example"
    )
