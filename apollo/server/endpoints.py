"""Model endpoints an admin configured: the only models a run started from the console may
use besides the embedded one (docs/api.md "Model endpoints").

An annotator names an endpoint; the server never sends requests to a URL a user typed. The
list lives in the home as `endpoints.json`, edited by `apollo endpoints` and the admin API
routes, and read on every use, so an edit from the CLI takes effect without a restart.
Importable without the web stack (the CLI uses it).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

EMBEDDED = "embedded"  # the packaged model (apollo.rollout.runner.EMBEDDED)
# The rule for annotator and endpoint names: no spaces, control or markup characters.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]*$"
_NAME = re.compile(NAME_PATTERN)
_ENV_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
FILENAME = "endpoints.json"


class EndpointError(ValueError):
    """A bad endpoint setting (the console answers 422)."""


class UnknownEndpoint(EndpointError):
    """No endpoint has this name (404)."""


class EndpointsUnreadable(EndpointError):
    """The endpoints file cannot be read; nothing can be called until it is fixed (503)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An OpenAI-compatible server runs may use, under a name."""

    name: str
    url: str
    model_name: str
    api_key_env: str | None = None


def _unprintable(text: str) -> bool:
    """Spaces or control characters: never part of a URL or a model name, and they would
    reach the terminal in `apollo endpoints list`."""
    return any(c.isspace() or not c.isprintable() for c in text)


def check_endpoint(endpoint: Endpoint) -> Endpoint:
    """The endpoint if its settings are usable; EndpointError naming the problem otherwise."""
    if len(endpoint.name) > 100 or not _NAME.fullmatch(endpoint.name):
        raise EndpointError(
            f"endpoint name {endpoint.name!r}: use letters, digits and . _ @ - "
            "(starting with a letter or digit, at most 100)"
        )
    if endpoint.name == EMBEDDED:
        raise EndpointError(f"{EMBEDDED!r} is the packaged model; pick another endpoint name")
    parts = urlsplit(endpoint.url)
    if parts.scheme not in ("http", "https") or not parts.netloc or _unprintable(endpoint.url):
        raise EndpointError(
            f"endpoint url {endpoint.url!r}: use an http(s) base URL such as http://host:8000/v1"
        )
    if not endpoint.model_name.strip() or _unprintable(endpoint.model_name):
        raise EndpointError(
            f"endpoint model name {endpoint.model_name!r}: give the name the server expects "
            "(printable, without spaces)"
        )
    if endpoint.api_key_env is not None and not _ENV_VAR.fullmatch(endpoint.api_key_env):
        raise EndpointError(
            f"api key variable {endpoint.api_key_env!r} is not an environment variable name"
        )
    return endpoint


class Endpoints:
    """The endpoints configured in one home (`<home>/endpoints.json`)."""

    def __init__(self, home_path: Path) -> None:
        self.path = home_path / FILENAME

    def all(self) -> dict[str, Endpoint]:
        """Every configured endpoint by name (none when the file does not exist)."""
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            found = [Endpoint(**e) for e in raw["endpoints"]]
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise EndpointsUnreadable(
                f"{self.path} is unreadable ({exc!r}); fix or remove it, then add the "
                "endpoints again with `apollo endpoints add`"
            ) from exc
        return {e.name: e for e in found}

    def get(self, name: str) -> Endpoint | None:
        return self.all().get(name)

    def put(self, endpoint: Endpoint) -> Endpoint:
        """Add or replace an endpoint."""
        check_endpoint(endpoint)
        with self._editing() as found:
            found[endpoint.name] = endpoint
        return endpoint

    def remove(self, name: str) -> Endpoint:
        """Remove an endpoint; runs already started on it keep their settings."""
        with self._editing() as found:
            gone = found.pop(name, None)
            if gone is None:
                raise UnknownEndpoint(f"no endpoint named {name!r} (see `apollo endpoints list`)")
        return gone

    @contextmanager
    def _editing(self) -> Iterator[dict[str, Endpoint]]:
        """The endpoints, to change in place; written back atomically under a lock, so the
        CLI and the server editing at once lose neither edit."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            found = self.all()
            yield found
            ordered = [asdict(e) for e in sorted(found.values(), key=lambda e: e.name)]
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"endpoints": ordered}, indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, self.path)
