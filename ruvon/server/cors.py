"""Cross-origin requests: refused (no CORS headers at all) unless origins are configured.

``RUVON_SERVER_CORS_ORIGINS`` lists the origins (``scheme://host[:port]``, comma- or
space-separated) whose pages may call the API from a browser with a bearer token. There is no
wildcard: a page on an origin not listed gets no ``Access-Control-Allow-Origin`` and the browser
keeps the answer from it. Credentials (cookies) are never allowed cross-origin: the UI's session
cookie serves the UI's own pages only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from ruvon.errors import ConfigurationError

__all__ = ["CORS_ORIGINS_ENV", "cors_origins", "install_cors"]

CORS_ORIGINS_ENV = "RUVON_SERVER_CORS_ORIGINS"
_ORIGIN = re.compile(
    r"^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$"
)
# What a browser client of the API sends: the token, a JSON body, an EventSource's resume id.
_HEADERS = ["Authorization", "Content-Type", "Last-Event-ID"]


def cors_origins(env: Mapping[str, str]) -> list[str]:
    """The configured origins; ``ConfigurationError`` naming the bad entry otherwise."""
    text = env.get(CORS_ORIGINS_ENV, "")
    origins = [entry for entry in re.split(r"[\s,]+", text.strip()) if entry]
    for origin in origins:
        if not _ORIGIN.match(origin):
            raise ConfigurationError(
                f"{CORS_ORIGINS_ENV}: {origin!r} is not an origin; write scheme://host[:port] "
                "(for example https://ops.example.com), no path, no wildcard"
            )
    return origins


def install_cors(app: FastAPI, env: Mapping[str, str]) -> list[str]:
    """Answer cross-origin requests from the configured origins only; those origins."""
    origins = cors_origins(env)
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=_HEADERS,
            allow_credentials=False,
            max_age=600,
        )
    return origins
