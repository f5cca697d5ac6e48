"""The auth dependency: ``Authorization: Bearer TOKEN`` to an :class:`Actor` with a role."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from ruvon.server.problems import ApiProblem
from ruvon.server.tokens import Actor, Role, TokenSet


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
        actor = tokens.identify(token)
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
