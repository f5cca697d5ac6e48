"""The tokens file: format, hashes, roles, anonymous access, refusing to start open."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from ruvon.config import Settings
from ruvon.errors import ConfigurationError
from ruvon.server.app import create_app
from ruvon.server.tokens import Actor, Role, load_token_set, parse_token_lines

FILE = """\
# role   token            name
viewer   read-only-token              # name defaults to the role
operator op-token         night-shift
admin    sha256:{digest}  root
"""


def write_tokens(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "tokens"
    path.write_text(text)
    return {"RUVON_SERVER_TOKENS": str(path)}


def test_a_tokens_file_grants_each_token_its_role_and_name(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"root-secret").hexdigest()
    tokens = load_token_set(write_tokens(tmp_path, FILE.format(digest=digest)))
    assert len(tokens) == 3 and tokens.anonymous is None
    assert tokens.identify("read-only-token") == Actor("viewer", Role.VIEWER)
    assert tokens.identify("op-token") == Actor("night-shift", Role.OPERATOR)
    assert tokens.identify("root-secret") == Actor("root", Role.ADMIN)
    assert tokens.identify(f"sha256:{digest}") is None  # the hash is not the token
    assert tokens.identify("op-token ") is None and tokens.identify(None) is None


def test_only_digests_are_kept(tmp_path: Path) -> None:
    tokens = load_token_set(write_tokens(tmp_path, "operator op-token night-shift\n"))
    assert "op-token" not in repr(vars(tokens))


def test_bad_lines_name_the_line_not_the_token() -> None:
    with pytest.raises(ConfigurationError, match=r"line 2: unknown role 'superuser'") as caught:
        parse_token_lines("viewer a\nsuperuser hidden-secret\n")
    assert "hidden-secret" not in str(caught.value)
    with pytest.raises(ConfigurationError, match=r"line 1: expected 'ROLE TOKEN \[NAME\]'"):
        parse_token_lines("viewer\n")


def test_no_tokens_and_no_anonymous_role_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="RUVON_SERVER_TOKENS is not set"):
        load_token_set({})
    with pytest.raises(ConfigurationError, match="holds no tokens"):
        load_token_set(write_tokens(tmp_path, "# nobody yet\n"))
    with pytest.raises(ConfigurationError, match="cannot read the tokens file"):
        load_token_set({"RUVON_SERVER_TOKENS": str(tmp_path / "missing")})
    with pytest.raises(ConfigurationError, match="RUVON_SERVER_ANONYMOUS: unknown role"):
        load_token_set({"RUVON_SERVER_ANONYMOUS": "everyone"})


async def test_anonymous_viewers_read_but_do_not_operate(tmp_path: Path) -> None:
    tokens = load_token_set({"RUVON_SERVER_ANONYMOUS": "viewer"})
    settings = Settings.from_env({"RUVON_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"})
    app = create_app(settings, tokens)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ruvon.test") as api:
            listed = await api.get("/api/v1/workflows")
            assert listed.status_code == 200 and listed.json()["items"] == []
            started = await api.post("/api/v1/workflows", json={"type": "Anything"})
            assert started.status_code == 403
            assert "'anonymous' has role viewer" in started.json()["message"]
