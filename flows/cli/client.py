"""A small HTTP client of the REST API (Kestra's v1 paths), on the standard library only."""

from __future__ import annotations

import base64
import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flows.cli.config import Context

DEFAULT_TIMEOUT = 60.0  # seconds for one request; `executions run --wait` asks for more
USER_AGENT = "baton-cli"

Query = Mapping[str, str | int | bool | Sequence[str] | None]


class ApiError(Exception):
    """The server answered an error status; `message` is its own (Kestra's `message` field)."""

    def __init__(self, status: int, reason: str, message: str, errors: list[dict[str, Any]]) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        self.errors = errors
        super().__init__(f"{status} {reason}: {message}")


class ConnectionFailed(Exception):
    """The server could not be reached (refused, unknown host, timeout, TLS)."""


@dataclass(frozen=True)
class FilePart:
    """A file in a multipart body."""

    filename: str
    content: bytes
    content_type: str = "application/octet-stream"


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def multipart(fields: Iterable[tuple[str, str | FilePart]]) -> tuple[bytes, str]:
    """A multipart/form-data body and its content type (with the boundary)."""
    boundary = f"baton-{uuid.uuid4().hex}"
    chunks: list[bytes] = []
    for name, value in fields:
        quoted = name.replace('"', "%22")
        chunks.append(f"--{boundary}\r\n".encode())
        if isinstance(value, FilePart):
            filename = value.filename.replace('"', "%22")
            chunks.append(
                f'Content-Disposition: form-data; name="{quoted}"; filename="{filename}"\r\n'
                f"Content-Type: {value.content_type}\r\n\r\n".encode()
            )
            chunks.append(value.content)
        else:
            chunks.append(f'Content-Disposition: form-data; name="{quoted}"\r\n\r\n'.encode())
            chunks.append(value.encode("utf-8"))
        chunks.append(b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


class Client:
    """Requests under `{server}/api/v1/{tenant}/`, authenticated as the context says."""

    def __init__(self, context: Context, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.context = context
        self.timeout = timeout
        server = context.server.rstrip("/")
        if server.endswith("/api/v1"):  # accept the API's own URL as well as the server's
            server = server[: -len("/api/v1")]
        self.base = f"{server}/api/v1/{urllib.parse.quote(context.tenant, safe='')}/"

    def url(self, path: str, query: Query | None = None) -> str:
        url = self.base + path.lstrip("/")
        pairs: list[tuple[str, str]] = []
        for key, value in (query or {}).items():
            if value is None:
                continue
            values = value if isinstance(value, list | tuple) else [value]
            for item in values:
                pairs.append((key, str(item).lower() if isinstance(item, bool) else str(item)))
        return f"{url}?{urllib.parse.urlencode(pairs)}" if pairs else url

    def request(
        self,
        method: str,
        path: str,
        query: Query | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
        timeout: float | None = None,
    ) -> Response:
        """Send one request; raises ApiError on a 4xx/5xx answer, ConnectionFailed when unreachable."""
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if content_type:
            headers["Content-Type"] = content_type
        if self.context.token:
            headers["Authorization"] = f"Bearer {self.context.token}"
        elif self.context.username:
            pair = f"{self.context.username}:{self.context.password or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        request = urllib.request.Request(self.url(path, query), data=body, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as answer:
                return Response(answer.status, answer.read(), answer.headers.get("Content-Type", ""))
        except urllib.error.HTTPError as error:
            raise _api_error(error) from None
        except urllib.error.URLError as error:
            raise ConnectionFailed(
                f"cannot reach the server at {self.context.server}: {error.reason}"
            ) from None
        except TimeoutError:
            raise ConnectionFailed(
                f"no answer from {self.context.server} within {timeout or self.timeout:g} s"
            ) from None
        except (http.client.HTTPException, ConnectionError) as error:
            raise ConnectionFailed(f"the connection to {self.context.server} failed: {error}") from None

    def get(self, path: str, query: Query | None = None) -> Any:
        return self.request("GET", path, query).json()

    def send_yaml(self, method: str, path: str, source: str, query: Query | None = None) -> Any:
        return self.request(method, path, query, source.encode("utf-8"), "application/x-yaml").json()

    def send_multipart(
        self,
        method: str,
        path: str,
        fields: Iterable[tuple[str, str | FilePart]],
        query: Query | None = None,
        timeout: float | None = None,
    ) -> Response:
        body, content_type = multipart(fields)
        return self.request(method, path, query, body, content_type, timeout=timeout)

    def pages(self, path: str, query: Query | None = None, size: int = 100) -> list[Any]:
        """Every result of a paged list endpoint (`{"results", "total"}`), page after page."""
        results: list[Any] = []
        page = 1
        while True:
            answer = self.get(path, {**(query or {}), "page": page, "size": size})
            batch = answer.get("results") or []
            results.extend(batch)
            if not batch or len(results) >= int(answer.get("total") or 0):
                return results
            page += 1


def _api_error(error: urllib.error.HTTPError) -> ApiError:
    raw = error.read() or b""
    message, errors = "", []
    try:
        body = json.loads(raw.decode("utf-8"))
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = str(body.get("message") or "")
        embedded = body.get("_embedded")
        if isinstance(embedded, dict) and isinstance(embedded.get("errors"), list):
            errors = [item for item in embedded["errors"] if isinstance(item, dict)]
    if not message:
        # Not our JSON (a proxy's page, a route the server does not have): its first words.
        text = " ".join(raw.decode("utf-8", errors="replace").split())[:200]
        message = text if text and not text.startswith("<") else (error.reason or "no message")
    return ApiError(error.code, str(error.reason or ""), message, errors)
