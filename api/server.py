"""Run the service with uvicorn: JSON logs, graceful shutdown, clean start-up errors."""

from __future__ import annotations

import logging
import sys

from fastapi import FastAPI

from api.observability import configure_logging
from api.security import KeyConfigError
from qa.settings import Settings

log = logging.getLogger("ragqa.server")
GRACEFUL_SHUTDOWN_S = 10


def serve(settings: Settings, app: FastAPI | None = None) -> None:
    """Serve until SIGINT/SIGTERM; then stop accepting, finish in-flight requests, exit.

    uvicorn drains open requests on SIGTERM for up to ``GRACEFUL_SHUTDOWN_S`` seconds, then
    the app's shutdown waits for the inference thread to finish the question it is on.
    """
    import uvicorn

    from api.app import create_app

    log_config = configure_logging(settings.log_format)
    try:
        app = app or create_app(settings)
    except KeyConfigError as exc:
        log.error("cannot start: %s", exc)
        sys.stderr.write(f"error: {exc}\n")
        raise SystemExit(2) from None
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=log_config,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
