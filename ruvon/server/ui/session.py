"""The UI's session: a signed cookie naming who logged in, their role and a CSRF token.

The cookie holds no token, raw or hashed: only the token's name, its role, a random CSRF token
and an expiry, signed with HMAC-SHA256 under a key the server keeps (``RUVON_SERVER_SESSION_SECRET``
so that replicas and restarts agree; a random key per process otherwise, so a restart logs
everyone out). It is http-only and ``SameSite=Lax``: a link from elsewhere opens a page logged
in, but no other site's form can post with it, and every form also carries the CSRF token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

from starlette.requests import Request
from starlette.responses import Response

from ruvon.server.tokens import Actor, Role

SESSION_SECRET_ENV = "RUVON_SERVER_SESSION_SECRET"
COOKIE_NAME = "ruvon_session"
COOKIE_PATH = "/ui"
SESSION_SECONDS = 8 * 3600


@dataclass(frozen=True)
class Session:
    """One browser's session: the actor once logged in (None before), its CSRF token, expiry."""

    actor: Actor | None
    csrf: str
    expires: float

    def with_actor(self, actor: Actor | None) -> Session:
        """A fresh session for ``actor`` (a new CSRF token: login and logout rotate it)."""
        return replace(self, actor=actor, csrf=secrets.token_urlsafe(24), expires=_expiry())

    def csrf_matches(self, presented: str | None) -> bool:
        """True when a form's CSRF field is this session's token (constant-time compare)."""
        return bool(presented) and hmac.compare_digest(self.csrf, str(presented))


def new_session(actor: Actor | None = None) -> Session:
    """A session with a new CSRF token, valid for :data:`SESSION_SECONDS`."""
    return Session(actor=actor, csrf=secrets.token_urlsafe(24), expires=_expiry())


def _expiry() -> float:
    return float(int(time.time()) + SESSION_SECONDS)  # whole seconds, as the cookie keeps it


def session_key(env: Mapping[str, str]) -> bytes:
    """The signing key: derived from ``RUVON_SERVER_SESSION_SECRET``, else random."""
    configured = env.get(SESSION_SECRET_ENV, "").strip()
    if configured:
        return hashlib.sha256(b"ruvon-ui-session:" + configured.encode()).digest()
    return secrets.token_bytes(32)


class SessionCodec:
    """Signs sessions into cookie values and reads them back (None when forged or expired)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def encode(self, session: Session) -> str:
        actor = session.actor
        data = {
            "n": actor.name if actor else None,
            "r": int(actor.role) if actor else None,
            "c": session.csrf,
            "e": int(session.expires),
        }
        payload = json.dumps(data, separators=(",", ":")).encode()
        return f"{_b64(payload)}.{_b64(self._sign(payload))}"

    def decode(self, value: str | None) -> Session | None:
        if not value or "." not in value:
            return None
        payload_text, _, signature_text = value.partition(".")
        try:
            payload, signature = _unb64(payload_text), _unb64(signature_text)
        except ValueError:
            return None
        if not hmac.compare_digest(self._sign(payload), signature):
            return None
        try:
            data = json.loads(payload)
            expires = float(data["e"])
            csrf = str(data["c"])
            actor = Actor(str(data["n"]), Role(int(data["r"]))) if data["n"] is not None else None
        except (ValueError, KeyError, TypeError):
            return None
        if expires < time.time():
            return None
        return Session(actor=actor, csrf=csrf, expires=expires)

    def read(self, request: Request) -> Session | None:
        """The request's valid session, if it has one."""
        return self.decode(request.cookies.get(COOKIE_NAME))

    def write(self, response: Response, session: Session, request: Request) -> None:
        """Set the session cookie on ``response`` (``Secure`` when served over https)."""
        response.set_cookie(
            COOKIE_NAME,
            self.encode(session),
            max_age=SESSION_SECONDS,
            path=COOKIE_PATH,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError("not base64") from exc
