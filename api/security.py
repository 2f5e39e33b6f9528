"""Access control for the HTTP API: hashed API keys with roles, rate limits, a body size limit.

Everything here is off by default. API keys are stored as SHA-256 hashes with a role
(``ask:HEX`` or ``admin:HEX``); a request presents the key as ``Authorization: Bearer KEY`` or
``X-API-Key: KEY`` and its hash is compared with every stored hash in constant time
(:func:`hmac.compare_digest`). Keys are random 256-bit tokens (``ragqa hash-key`` makes one), so
an unsalted hash is as strong as the key; the service never stores or logs a key itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import math
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

Role = Literal["ask", "admin"]
ROLES: tuple[Role, ...] = ("ask", "admin")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class KeyConfigError(ValueError):
    """An API key entry is malformed; the message says which one and how to fix it."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh random API key (256 bits, URL-safe)."""
    return "rq_" + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class StoredKey:
    role: Role
    digest: str


def parse_entry(entry: str, where: str = "RAGQA_API_KEYS") -> StoredKey:
    """``ROLE:SHA256HEX`` (or a bare hash, role ``ask``) -> StoredKey; never echoes the value."""
    text = entry.strip()
    role, sep, digest = text.partition(":")
    if not sep:
        role, digest = "ask", text
    digest = digest.strip().lower()
    if role not in ROLES:
        raise KeyConfigError(f"{where}: unknown role {role!r} (use 'ask' or 'admin')")
    if not _HEX64.match(digest):
        raise KeyConfigError(
            f"{where}: an entry is not ROLE:SHA256HEX (64 hex digits); store the hash that "
            "`ragqa hash-key` prints, never the key itself"
        )
    return StoredKey(role, digest)  # type: ignore[arg-type]


def load_keys(entries: list[str], keys_file: Path | None) -> list[StoredKey]:
    keys = [parse_entry(e) for e in entries if e.strip()]
    if keys_file is not None:
        try:
            lines = keys_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise KeyConfigError(f"cannot read the API keys file {keys_file}: {exc}") from None
        for n, line in enumerate(lines, start=1):
            line = line.split("#", 1)[0].strip()
            if line:
                keys.append(parse_entry(line, f"{keys_file}:{n}"))
    return keys


class KeyStore:
    def __init__(self, keys: list[StoredKey]) -> None:
        self.keys = keys

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def role_of(self, presented: str) -> Role | None:
        """The role of a presented key, or None; every stored hash is compared (constant time)."""
        digest = hash_key(presented).encode()
        found: Role | None = None
        for key in self.keys:
            if hmac.compare_digest(digest, key.digest.encode()):
                found = key.role if found != "admin" else found
        return found


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    if x_api_key:
        return x_api_key.strip()
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return None


class RateLimiter:
    """A token bucket per client: ``per_minute`` a minute on average, ``burst`` at once.

    Thread-safe; remembers at most ``max_clients`` clients (the least recently seen are
    forgotten), so a flood of addresses cannot grow memory without bound.
    """

    def __init__(self, per_minute: float, burst: int, max_clients: int = 10_000) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def acquire(self, client: str, now: float | None = None) -> float:
        """0 when the request may go ahead, else the seconds to wait before retrying."""
        if not self.enabled:
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.pop(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[client] = (tokens, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        return wait


def retry_after(wait: float) -> str:
    return str(max(1, math.ceil(wait)))


class _TooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413, by Content-Length or while reading."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await self._refuse(send)
                    return
        received = 0
        started = exceeded = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if exceeded:  # the app turned the aborted read into some error: say what it was
                if not started:
                    started = True
                    await self._refuse(send)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        with contextlib.suppress(_TooLarge):
            await self.app(scope, limited_receive, tracking_send)
        if exceeded and not started:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = (
            b'{"detail":"the request body is larger than the limit of '
            + str(self.max_bytes).encode()
            + b' bytes (RAGQA_MAX_BODY_BYTES)"}'
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def resolve_under(root: Path, relative: str) -> Path:
    """``root/relative`` resolved (symlinks followed); ValueError unless it stays below root."""
    if not relative or "\x00" in relative:
        raise ValueError("empty path or NUL byte")
    candidate = Path(relative)
    if candidate.is_absolute():
        raise ValueError("paths must be relative to the ingest root")
    base = root.resolve()
    resolved = (base / candidate).resolve()
    if resolved != base and base not in resolved.parents:
        raise ValueError("the path leaves the ingest root")
    return resolved
