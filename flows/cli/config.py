"""Where the client connects: named contexts in a config file, overridden by env and flags.

The file (default `~/.config/baton/config.json`, or `$BATON_CONFIG`) holds secrets, so it is
written with mode 0600 in a folder of mode 0700, and nothing here ever prints a token or password.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_TENANT = "main"
_ENV = {
    "server": "BATON_SERVER",
    "tenant": "BATON_TENANT",
    "token": "BATON_TOKEN",
    "username": "BATON_USERNAME",
    "password": "BATON_PASSWORD",
}


class ConfigError(Exception):
    """A mistake the user can fix: a missing or malformed configuration, an unknown context, a
    malformed argument. Printed as `baton: error: ...`, exit code 1."""


@dataclass(frozen=True)
class Context:
    """One server to talk to, and how to authenticate there."""

    server: str
    tenant: str = DEFAULT_TENANT
    token: str | None = None
    username: str | None = None
    password: str | None = None

    @property
    def auth(self) -> str:
        """How this context authenticates, for display (never the secret)."""
        if self.token:
            return "token"
        if self.username:
            return f"basic ({self.username})"
        return "none"


@dataclass
class Config:
    path: Path
    current: str | None = None
    contexts: dict[str, Context] = field(default_factory=dict)

    def save(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        body = {
            "current": self.current,
            "contexts": {
                name: {key: value for key, value in asdict(context).items() if value is not None}
                for name, context in sorted(self.contexts.items())
            },
        }
        # Created 0600 from the start (never world-readable, not even for a moment), and an existing
        # file with looser rights is tightened.
        descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            json.dump(body, out, indent=2)
            out.write("\n")


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    configured = environ.get("BATON_CONFIG")
    if configured:
        return Path(configured).expanduser()
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "baton" / "config.json"


def load_config(path: Path) -> Config:
    if not path.exists():
        return Config(path)
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read the config file {path}: {error}") from error
    if not isinstance(body, dict) or not isinstance(body.get("contexts", {}), dict):
        raise ConfigError(f"the config file {path} is not a baton config (expected a JSON object)")
    contexts: dict[str, Context] = {}
    for name, raw in body.get("contexts", {}).items():
        if not isinstance(raw, dict) or not isinstance(raw.get("server"), str):
            raise ConfigError(f"context `{name}` in {path} has no `server`")
        contexts[name] = Context(
            server=raw["server"],
            tenant=raw.get("tenant") or DEFAULT_TENANT,
            token=raw.get("token"),
            username=raw.get("username"),
            password=raw.get("password"),
        )
    current = body.get("current")
    return Config(path, current if isinstance(current, str) else None, contexts)


def resolve(config: Config, flags: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Context:
    """The context to use: the one named by `--context` (else the current one), then `BATON_*`
    variables over it, then command-line flags over both. Authentication is taken as a whole from
    the highest layer that gives any (a token from the environment replaces a context's user)."""
    environ = os.environ if environ is None else environ
    name = flags.get("context")
    if name and name not in config.contexts:
        raise ConfigError(f"no context `{name}` in {config.path} (see `baton config list`)")
    chosen = config.contexts.get(name or config.current or "")
    env_values = {key: environ.get(variable) or None for key, variable in _ENV.items()}
    flag_values = {key: flags.get(key) or None for key in _ENV}
    layers: list[dict[str, Any]] = [asdict(chosen) if chosen else {}, env_values, flag_values]
    values: dict[str, Any] = {}
    for layer in layers:
        for key in ("server", "tenant"):
            if layer.get(key):
                values[key] = layer[key]
        if layer.get("token") or layer.get("username"):
            values.update(
                token=layer.get("token"), username=layer.get("username"), password=layer.get("password")
            )
        elif layer.get("password") and values.get("username"):
            values["password"] = layer["password"]
    if not values.get("server"):
        raise ConfigError(
            "no server: run `baton config add NAME --server URL`, or set BATON_SERVER, or pass --server"
        )
    return Context(
        server=values["server"],
        tenant=values.get("tenant") or DEFAULT_TENANT,
        token=values.get("token"),
        username=values.get("username"),
        password=values.get("password"),
    )
