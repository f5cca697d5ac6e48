"""Ruvon Server: the REST API over a Ruvon database (``ruvon server``).

Needs the ``server`` extra (``pip install 'ruvon[server]'``: FastAPI and uvicorn). Reads go
straight to the persistence provider; operations go through :class:`ruvon.Client`, so they
behave as ``ruvon start / resume / cancel / retry`` do, and are audited with who asked.
"""

from __future__ import annotations

from ruvon.server.tokens import Actor, Role, TokenSet, load_token_set

__all__ = ["Actor", "Role", "TokenSet", "load_token_set"]
