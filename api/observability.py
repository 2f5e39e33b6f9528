"""Operations: a request id on every request, JSON logs that carry it, Prometheus metrics.

Every request gets an id (the client's ``X-Request-ID`` when it is a short plain token, else a
new one); it is echoed in the response's ``X-Request-ID`` header and put on every log line
written while the request is handled. One access-log line a request records method, route,
status and duration, never headers, query strings or bodies (so never a key or a question).
"""

from __future__ import annotations

import contextvars
import json
import logging
import logging.config
import re
import time
import uuid
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
access_log = logging.getLogger("ragqa.access")
disable_created_metrics()  # no *_created series: half the output, nothing lost
_STD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request_id and any extras."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id_var.get(),
        }
        for key, value in vars(record).items():
            if key not in _STD_ATTRS and key not in out:
                out[key] = (
                    value if isinstance(value, str | int | float | bool | None) else str(value)
                )
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return super().format(record)


def configure_logging(fmt: str = "json", level: int = logging.INFO) -> dict[str, Any]:
    """Log to stderr in ``fmt``; returns a uvicorn ``log_config`` that uses the same format."""
    formatter = "ragqa_json" if fmt == "json" else "ragqa_text"
    factory = (
        "api.observability.JsonFormatter" if fmt == "json" else "api.observability.TextFormatter"
    )
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {formatter: {"()": factory}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": formatter},
        },
        "root": {"handlers": ["stderr"], "level": logging.getLevelName(level)},
        "loggers": {
            # our access line replaces uvicorn's (it has the request id and the route)
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
        },
    }
    logging.config.dictConfig(config)
    return config


class Metrics:
    """The service's Prometheus metrics, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ragqa_http_requests_total",
            "HTTP requests by method, route and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ragqa_http_request_duration_seconds",
            "Time to answer an HTTP request, by route.",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.errors = Counter(
            "ragqa_http_errors_total",
            "HTTP responses with a 5xx status, by route.",
            ["route"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "ragqa_http_requests_in_flight", "Requests being handled.", registry=self.registry
        )
        self.documents = Gauge(
            "ragqa_index_documents", "Documents in the live index.", registry=self.registry
        )
        self.chunks = Gauge(
            "ragqa_index_chunks", "Chunks in the live index.", registry=self.registry
        )
        self.index_bytes = Gauge(
            "ragqa_index_bytes", "Size of the live index snapshot on disk.", registry=self.registry
        )
        self.ready = Gauge(
            "ragqa_ready", "1 when the index and the models are loaded.", registry=self.registry
        )
        self.ingestions = Counter(
            "ragqa_ingestions_total",
            "Ingestions run over HTTP, by outcome.",
            ["outcome"],
            registry=self.registry,
        )


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path:
        return str(path)
    if str(scope.get("path", "")).startswith("/static/"):
        return "/static"
    return "unmatched"  # never the raw path: unbounded label values would grow memory


class RequestContextMiddleware:
    """Request id, access log line and request metrics for every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = ""
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                given = value.decode("latin-1")
                break
        rid = given if _SAFE_ID.match(given) else uuid.uuid4().hex
        token = request_id_var.set(rid)
        status = 500
        t0 = time.perf_counter()
        self.metrics.in_flight.inc()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - t0
            route = _route_of(scope)
            self.metrics.in_flight.dec()
            self.metrics.requests.labels(scope.get("method", ""), route, str(status)).inc()
            self.metrics.latency.labels(route).observe(elapsed)
            if status >= 500:
                self.metrics.errors.labels(route).inc()
            client = scope.get("client")
            access_log.info(
                "%s %s %d %.1fms",
                scope.get("method", ""),
                route,
                status,
                elapsed * 1000,
                extra={
                    "method": scope.get("method", ""),
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "client": client[0] if client else None,
                },
            )
            request_id_var.reset(token)
