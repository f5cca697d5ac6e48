"""Settings from the environment (``RUVON_*``, with Ruvon's older names as fallbacks)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ruvon.errors import ConfigurationError

DEFAULT_SQLITE_FILE = "ruvon.sqlite3"


def _first(env: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = env.get(name)
        if value:
            return value
    return None


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigurationError(f"{name}={value!r} is not an integer") from None


@dataclass(frozen=True)
class Settings:
    """Resolved configuration; build it with :meth:`from_env`."""

    database_url: str
    config_dir: Path
    registry_file: Path
    max_state_bytes: int = 10 * 1024 * 1024

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read ``RUVON_DATABASE_URL`` (or ``DATABASE_URL``), config dir, registry, limits."""
        env = os.environ if env is None else env
        database_url = _first(env, "RUVON_DATABASE_URL", "DATABASE_URL") or (
            f"sqlite:///{DEFAULT_SQLITE_FILE}"
        )
        config_dir = Path(_first(env, "RUVON_CONFIG_DIR", "WORKFLOW_CONFIG_DIR") or "config")
        registry = _first(env, "RUVON_REGISTRY_FILE", "WORKFLOW_REGISTRY_FILE")
        registry_file = Path(registry) if registry else config_dir / "workflow_registry.yaml"
        return cls(
            database_url=database_url,
            config_dir=config_dir,
            registry_file=registry_file,
            max_state_bytes=_int(env, "RUVON_MAX_STATE_BYTES", 10 * 1024 * 1024),
        )
