"""The auth dependency: ``Authorization: Bearer TOKEN`` to an :class:`Actor` with a role.

A request without the header may still be identified by a credential source registered with
:func:`add_credential_source` (the web UI's session cookie: a browser's ``EventSource`` cannot
send headers); a bearer header, when present, always decides.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request

from ruvon.server.problems import ApiProblem
from ruvon.server.tokens import Actor, Role, TokenSet

#: Identifies a request that carries no bearer token (None: not by this source).
CredentialSource = Callable[[Request], Awaitable[Actor | None]]


def add_credential_source(app: FastAPI, source: CredentialSource) -> None:
    """Let ``source`` identify requests without an ``Authorization`` header, after the sources
    added before it."""
    sources: list[CredentialSource] = getattr(app.state, "credential_sources", [])
    app.state.credential_sources = [*sources, source]


async def _from_sources(request: Request) -> Actor | None:
    for source in getattr(request.app.state, "credential_sources", ()):
        actor: Actor | None = await source(request)
        if actor is not None:
            return actor
    return None


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header (None without one)."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiProblem(
            401, "unauthorized", "the Authorization header must be 'Bearer TOKEN'", bearer=True
        )
    return token.strip()


def require(role: Role) -> Callable[[Request], Awaitable[Actor]]:
    """A dependency that lets the request through with at least ``role`` (401 / 403 else)."""

    async def dependency(request: Request) -> Actor:
        tokens: TokenSet = request.app.state.tokens
        token = bearer_token(request)
        if token is not None:
            actor = tokens.identify(token)
        else:
            actor = await _from_sources(request) or tokens.identify(None)
        if actor is None:
            message = "this token is not accepted" if token else "a token is required"
            raise ApiProblem(
                401,
                "unauthorized",
                f"{message}: send 'Authorization: Bearer TOKEN' with a token from the "
                "server's tokens file",
                bearer=True,
            )
        if actor.role < role:
            raise ApiProblem(
                403,
                "forbidden",
                f"'{actor.name}' has role {actor.role.label}; this needs {role.label} or above",
            )
        return actor

    return dependency
