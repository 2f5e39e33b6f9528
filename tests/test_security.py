"""Access control: hashed API keys with roles, rate limits, CORS, HTTP ingest confined to a root."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from api.security import KeyConfigError, KeyStore, RateLimiter, hash_key, load_keys, parse_entry
from qa.cli import app as cli_app
from qa.ingest import Ingestor
from qa.pipeline import QAPipeline
from qa.settings import Settings
from qa.store import IndexStore
from qa.types import Passage, ReaderOutput

from .conftest import SEEDS, FakeEmbedder

ASK_KEY, ADMIN_KEY = "rq_ask-key-for-tests", "rq_admin-key-for-tests"


class _NoReader:
    name = "no-reader"

    def read(self, question: str, passages: Sequence[Passage], top_n: int = 5) -> ReaderOutput:
        return ReaderOutput([])


def _app(tmp_path: Path, **overrides: object) -> TestClient:
    settings = Settings(
        index_dir=tmp_path / "index", embedding_model="fake-embedder", chunk_tokens=60, **overrides
    )
    if not IndexStore(settings.index_dir).exists():
        Ingestor(settings, FakeEmbedder()).ingest([SEEDS], progress=False)
    pipeline = QAPipeline(settings, embedder=FakeEmbedder(), reader=_NoReader())  # type: ignore[arg-type]
    return TestClient(create_app(settings, pipeline=pipeline, ingest_embedder=FakeEmbedder()))


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[TestClient]:
    keys = [f"ask:{hash_key(ASK_KEY)}", f"admin:{hash_key(ADMIN_KEY)}"]
    root = tmp_path / "inbox"
    (root / "news").mkdir(parents=True)
    (root / "news" / "a.txt").write_text("Inbox article\n\nThe bridge opened in May.", "utf-8")
    with _app(tmp_path, api_keys=keys, ingest_root=root) as client:
        yield client


def test_access_control_is_off_by_default(tmp_path: Path) -> None:
    with _app(tmp_path) as client:
        assert client.post("/ask", json={"question": "Who?"}).status_code == 200
        assert client.get("/documents").status_code == 200
        assert client.get("/metrics").status_code == 200
        r = client.post("/ingest", json={"paths": ["x"]})
        assert r.status_code == 404 and "RAGQA_INGEST_ROOT" in r.json()["detail"]


def test_keys_are_required_and_checked(keyed: TestClient) -> None:
    r = keyed.post("/ask", json={"question": "Who?"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    bad = keyed.post("/ask", json={"question": "Who?"}, headers={"X-API-Key": "rq_wrong"})
    assert bad.status_code == 401 and "not valid" in bad.json()["detail"]
    stored = keyed.post(  # the stored hash itself is not a key
        "/ask", json={"question": "Who?"}, headers={"X-API-Key": hash_key(ASK_KEY)}
    )
    assert stored.status_code == 401
    for headers in ({"Authorization": f"Bearer {ASK_KEY}"}, {"X-API-Key": ASK_KEY}):
        assert keyed.post("/ask", json={"question": "Who?"}, headers=headers).status_code == 200
        assert keyed.get("/documents", headers=headers).status_code == 200
    assert keyed.get("/documents", headers={"Authorization": f"Basic {ASK_KEY}"}).status_code == 401
    assert keyed.get("/view/x").status_code == 401
    # probes stay open so that an orchestrator can use them
    assert keyed.get("/health").status_code == 200 and keyed.get("/ready").status_code == 200
    assert keyed.get("/live").status_code == 200


def test_admin_endpoints_need_the_admin_role(keyed: TestClient) -> None:
    ask = {"Authorization": f"Bearer {ASK_KEY}"}
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    assert keyed.get("/metrics").status_code == 401
    r = keyed.get("/metrics", headers=ask)
    assert r.status_code == 403 and "admin" in r.json()["detail"]
    assert keyed.post("/ingest", json={"paths": ["news"]}, headers=ask).status_code == 403
    assert keyed.get("/metrics", headers=admin).status_code == 200
    r = keyed.post("/ingest", json={"paths": ["news"]}, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["added"] == 1 and r.json()["documents"] == 3
    # the admin key may ask too
    assert keyed.post("/ask", json={"question": "bridge?"}, headers=admin).status_code == 200


@pytest.mark.parametrize(
    "path",
    ["../index", "/etc/passwd", "news/../../index", "..", "news/\x00", "", "/"],
)
def test_http_ingest_cannot_leave_its_root(keyed: TestClient, path: str) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    r = keyed.post("/ingest", json={"paths": [path]}, headers=admin)
    assert r.status_code in (400, 422), r.text
    assert keyed.get("/health").json()["documents"] == 2


def test_http_ingest_refuses_symlinks_out_of_the_root(keyed: TestClient, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("Secret\n\nThe password is hunter2.", "utf-8")
    os.symlink(secret, tmp_path / "inbox" / "news" / "link.txt")
    os.symlink(tmp_path, tmp_path / "inbox" / "up")
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    r = keyed.post("/ingest", json={"paths": ["news"]}, headers=admin)
    assert r.status_code == 200
    assert any(s["reason"] == "outside the ingest root" for s in r.json()["skipped"])
    assert keyed.post("/ingest", json={"paths": ["up"]}, headers=admin).status_code == 400
    texts = keyed.get("/documents", headers=admin).json()["documents"]
    assert not any("Secret" in d["title"] for d in texts)


def test_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    keys = [f"ask:{hash_key(ASK_KEY)}", f"ask:{hash_key('rq_other')}"]
    with _app(tmp_path, api_keys=keys, rate_limit_per_minute=6, rate_limit_burst=3) as client:
        headers = {"X-API-Key": ASK_KEY}
        codes = [client.get("/documents", headers=headers).status_code for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        r = client.get("/documents", headers=headers)
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 10
        # limits are per key: another key is not affected; probes are never limited
        assert client.get("/documents", headers={"X-API-Key": "rq_other"}).status_code == 200
        assert client.get("/health").status_code == 200


def test_rate_limiter_refills_and_forgets_old_clients() -> None:
    limiter = RateLimiter(per_minute=60, burst=2, max_clients=3)
    assert limiter.acquire("a", now=0.0) == 0 and limiter.acquire("a", now=0.0) == 0
    assert limiter.acquire("a", now=0.0) == pytest.approx(1.0)
    assert limiter.acquire("a", now=1.0) == 0  # one token back after a second
    for c in "bcdef":
        limiter.acquire(c, now=2.0)
    assert len(limiter._buckets) == 3
    assert RateLimiter(0, 1).acquire("x") == 0  # off


def test_key_entries_are_validated_and_never_echoed(tmp_path: Path) -> None:
    with pytest.raises(KeyConfigError, match="unknown role") as exc:
        parse_entry("root:" + "a" * 64)
    with pytest.raises(KeyConfigError, match="SHA256HEX") as exc:
        parse_entry("ask:my-plain-secret")
    assert "my-plain-secret" not in str(exc.value)
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# ops team\nadmin:{hash_key('k1')}  # alice\n\n{hash_key('k2')}\n")
    store = KeyStore(load_keys([], keys_file))
    assert store.role_of("k1") == "admin" and store.role_of("k2") == "ask"
    assert store.role_of("k3") is None and store.role_of("") is None
    with pytest.raises(KeyConfigError, match="cannot read"):
        load_keys([], tmp_path / "missing")


def test_hash_key_command() -> None:
    result = CliRunner().invoke(cli_app, ["hash-key", "--role", "admin", "--key", "s3cret"])
    assert result.exit_code == 0
    assert result.output.strip().endswith(f"admin:{hash_key('s3cret')}")
    fresh = CliRunner().invoke(cli_app, ["hash-key"])
    key = fresh.output.split("):", 1)[1].split()[0]
    assert fresh.output.strip().endswith(f"ask:{hash_key(key)}") and len(key) > 40
    assert CliRunner().invoke(cli_app, ["hash-key", "--role", "root"]).exit_code == 2


def test_no_secrets_in_logs(keyed: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        keyed.post("/ask", json={"question": "Who?"}, headers={"X-API-Key": ASK_KEY})
        keyed.post("/ask", json={"question": "Who?"}, headers={"X-API-Key": "rq_guess"})
        keyed.get(f"/documents?token={ADMIN_KEY}", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    server = [r for r in caplog.records if not r.name.startswith("httpx")]  # not the client's
    logged = "\n".join(f"{r.getMessage()} {vars(r)}" for r in server)
    assert "ragqa.access" in {r.name for r in caplog.records}
    for secret in (ASK_KEY, ADMIN_KEY, "rq_guess", hash_key(ASK_KEY)):
        assert secret not in logged


def test_cors_allow_list_with_keys(tmp_path: Path) -> None:
    keys = [f"ask:{hash_key(ASK_KEY)}"]
    with _app(tmp_path, api_keys=keys, cors_origins=["https://ok.example"]) as client:
        pre = client.options(
            "/ask",
            headers={
                "origin": "https://ok.example",
                "access-control-request-method": "POST",
                "access-control-request-headers": "authorization,content-type",
            },
        )
        assert pre.status_code == 200
        assert "authorization" in pre.headers["access-control-allow-headers"].lower()
        bad = client.options(
            "/ask",
            headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
        )
        assert "access-control-allow-origin" not in bad.headers
