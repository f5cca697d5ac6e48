"""API tokens: the file ``RUVON_SERVER_TOKENS`` names, and the roles they grant.

One token a line, ``ROLE TOKEN [NAME]`` (``#`` starts a comment). ``TOKEN`` may be given as a
stored hash, ``sha256:<hex>``, so the file need not hold the secret. Only SHA-256 digests are
kept in memory, and a presented token is compared with every digest in constant time.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ruvon.errors import ConfigurationError

TOKENS_ENV = "RUVON_SERVER_TOKENS"
ANONYMOUS_ENV = "RUVON_SERVER_ANONYMOUS"
_HASHED = re.compile(r"^sha256:([0-9a-fA-F]{64})$")


class Role(enum.IntEnum):
    """What a token may do; each role includes the ones below it."""

    VIEWER = 1  # read workflows, history, definitions
    OPERATOR = 2  # start, resume, cancel, retry
    ADMIN = 3  # everything (nothing admin-only yet)

    @classmethod
    def parse(cls, text: str) -> Role:
        """``viewer`` / ``operator`` / ``admin`` in any case; ``ValueError`` otherwise."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(role.name.lower() for role in cls)
            raise ValueError(f"unknown role {text!r} (one of {names})") from None

    @property
    def label(self) -> str:
        """The role as the tokens file spells it."""
        return self.name.lower()


@dataclass(frozen=True)
class Actor:
    """Who made a request: the token's name (``anonymous`` without one) and its role."""

    name: str
    role: Role


@dataclass(frozen=True)
class _Entry:
    digest: bytes
    actor: Actor


def token_digest(token: str) -> bytes:
    """The SHA-256 digest a token is stored and compared as."""
    return hashlib.sha256(token.encode()).digest()


class TokenSet:
    """The accepted tokens (as digests) and the role granted without one, if any."""

    def __init__(
        self, entries: Iterable[tuple[str, Role, str]] = (), anonymous: Role | None = None
    ) -> None:
        """``entries``: ``(token or sha256:<hex>, role, name)``."""
        self._entries = [
            _Entry(_digest_of(token), Actor(name, role)) for token, role, name in entries
        ]
        self.anonymous = anonymous

    def __len__(self) -> int:
        return len(self._entries)

    def identify(self, token: str | None) -> Actor | None:
        """The actor a presented token belongs to; the anonymous actor without a token."""
        if token is None:
            return Actor("anonymous", self.anonymous) if self.anonymous is not None else None
        presented = token_digest(token)
        found: Actor | None = None
        for entry in self._entries:  # no early exit: the time taken does not depend on a match
            if hmac.compare_digest(entry.digest, presented) and found is None:
                found = entry.actor
        return found


def _digest_of(token: str) -> bytes:
    hashed = _HASHED.match(token)
    return bytes.fromhex(hashed.group(1)) if hashed else token_digest(token)


def parse_token_lines(text: str, source: str = "tokens file") -> list[tuple[str, Role, str]]:
    """The ``(token, role, name)`` of each line; ``ConfigurationError`` naming a bad line.

    Messages name the line number, never the token.
    """
    entries: list[tuple[str, Role, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) not in (2, 3):
            raise ConfigurationError(
                f"{source}, line {number}: expected 'ROLE TOKEN [NAME]', found {len(fields)} fields"
            )
        try:
            role = Role.parse(fields[0])
        except ValueError as exc:
            raise ConfigurationError(f"{source}, line {number}: {exc}") from None
        name = fields[2] if len(fields) == 3 else role.label
        entries.append((fields[1], role, name))
    return entries


def load_token_set(env: Mapping[str, str]) -> TokenSet:
    """Tokens from the file ``RUVON_SERVER_TOKENS`` names; anonymous access only when
    ``RUVON_SERVER_ANONYMOUS`` names a role. Neither: ``ConfigurationError`` (no open server)."""
    anonymous_text = env.get(ANONYMOUS_ENV, "").strip()
    try:
        anonymous = Role.parse(anonymous_text) if anonymous_text else None
    except ValueError as exc:
        raise ConfigurationError(f"{ANONYMOUS_ENV}: {exc}") from None
    entries: list[tuple[str, Role, str]] = []
    path_text = env.get(TOKENS_ENV, "").strip()
    if path_text:
        path = Path(path_text)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(
                f"{TOKENS_ENV}={path_text}: cannot read the tokens file ({exc.strerror})"
            ) from None
        entries = parse_token_lines(text, source=str(path))
    if not entries and anonymous is None:
        where = f"{path_text} holds no tokens" if path_text else f"{TOKENS_ENV} is not set"
        raise ConfigurationError(
            f"refusing to start an API nobody may use or anyone may change: {where}. Write "
            f"'ROLE TOKEN [NAME]' lines (roles: viewer, operator, admin) to a file and set "
            f"{TOKENS_ENV}=FILE, or allow access without a token with {ANONYMOUS_ENV}=viewer"
        )
    return TokenSet(entries, anonymous)
