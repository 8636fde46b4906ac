"""Polling triggers: triggers evaluated every `interval` on the tick. Today one type, the HTTP trigger
(`io.kestra.plugin.core.http.Trigger`): call a URL, start the flow when a condition on the response
holds.

`check_polling_trigger` validates one in the loader; `HttpPolling.of` reads the validated properties
that decide when and how long an evaluation runs (interval, timeouts), for the tick and the worker.
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flows.spec.durations import parse_duration
from flows.spec.marked_yaml import MarkedDict

if TYPE_CHECKING:
    from flows.spec.loader import _Checker

HTTP_TRIGGER_TYPES = ("io.kestra.plugin.core.http.Trigger", "io.kestra.plugin.fs.http.Trigger")
POLLING_TRIGGER_TYPES = HTTP_TRIGGER_TYPES

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE")
DEFAULT_RESPONSE_CONDITION = "{{ response.statusCode < 400 }}"
AUTH_TYPES = ("BASIC", "BEARER")

# Properties every trigger has (Kestra's AbstractTrigger), plus `inputs` (a Baton addition here).
_TRIGGER_KEYS = frozenset(
    (
        "id", "type", "description", "conditions", "disabled", "workerGroup", "logLevel", "labels",
        "stopAfter", "logToFile", "inputs",
    )
)  # fmt: skip
_HTTP_KEYS = frozenset(
    (
        "uri", "method", "body", "formData", "contentType", "headers", "options", "sslOptions",
        "encryptBody", "responseCondition", "interval",
    )
)  # fmt: skip
_TIMEOUTS = ("connectTimeout", "readTimeout", "readIdleTimeout", "connectionPoolIdleTimeout")
_PROXY_KEYS = ("proxyType", "proxyAddress", "proxyPort", "proxyUsername", "proxyPassword")
_OPTION_KEYS = frozenset(
    (
        *_TIMEOUTS, *_PROXY_KEYS, "maxContentLength", "followRedirects", "defaultCharset", "logLevel",
        "basicAuthUser", "basicAuthPassword", "auth",
    )
)  # fmt: skip


def check_polling_trigger(checker: _Checker, data: MarkedDict, path: str) -> None:
    """Report what is wrong with a polling trigger at `path` through `checker`."""
    checker.unknown_keys(data, path, _TRIGGER_KEYS | _HTTP_KEYS)
    uri = checker.string(data, "uri", path, required=True)
    if uri is not None and "{{" not in uri and "{%" not in uri:
        parts = urlsplit(uri)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            checker.add(f"{path}.uri", f"must be an http or https URL, got {uri!r}", data.mark_of("uri"))
    checker.choice(data, "method", path, HTTP_METHODS, "GET")
    for key in ("body", "contentType", "responseCondition"):
        checker.string(data, key, path)
    _positive_duration(checker, data, "interval", path)
    for key in ("headers", "formData", "inputs"):
        if data.get(key) is not None:
            checker.mapping(data, key, f"{path}.{key}")
    for key in ("disabled", "encryptBody"):
        checker.boolean(data, key, path)
    if data.get("options") is not None and (options := checker.mapping(data, "options", f"{path}.options")):
        _check_options(checker, options, f"{path}.options")
    if data.get("sslOptions") is not None and (
        ssl := checker.mapping(data, "sslOptions", f"{path}.sslOptions")
    ):
        checker.unknown_keys(ssl, f"{path}.sslOptions", ("insecureTrustAllCertificates",))
        checker.boolean(ssl, "insecureTrustAllCertificates", f"{path}.sslOptions")


def _positive_duration(checker: _Checker, data: MarkedDict, key: str, path: str) -> None:
    value = checker.duration(data, key, path)
    if value is not None and value <= timedelta(0):
        checker.add(f"{path}.{key}", "must be a duration greater than zero", data.mark_of(key))


def _check_options(checker: _Checker, options: MarkedDict, path: str) -> None:
    checker.unknown_keys(options, path, _OPTION_KEYS)
    for key in _TIMEOUTS:
        _positive_duration(checker, options, key, path)
    for key in _PROXY_KEYS:
        if options.get(key) is not None:
            checker.add(f"{path}.{key}", "proxies are not supported yet", options.key_mark_of(key))
    checker.integer(options, "maxContentLength", path, minimum=1)
    checker.boolean(options, "followRedirects", path, default=True)
    for key in ("basicAuthUser", "basicAuthPassword", "logLevel"):
        checker.string(options, key, path)
    charset = checker.string(options, "defaultCharset", path)
    if charset is not None:
        try:
            codecs.lookup(charset)
        except LookupError:
            checker.add(
                f"{path}.defaultCharset", f"unknown charset {charset!r}", options.mark_of("defaultCharset")
            )
    if options.get("auth") is not None and (auth := checker.mapping(options, "auth", f"{path}.auth")):
        checker.unknown_keys(auth, f"{path}.auth", ("type", "username", "password", "token"))
        kind = None
        if checker.string(auth, "type", f"{path}.auth", required=True) is not None:
            kind = checker.choice(auth, "type", f"{path}.auth", AUTH_TYPES, None)
        required = ("username", "password") if kind == "BASIC" else ("token",) if kind == "BEARER" else ()
        for key in ("username", "password", "token"):
            checker.string(auth, key, f"{path}.auth", required=key in required)


@dataclass(frozen=True)
class HttpPolling:
    """When and how long an HTTP trigger's evaluation runs, from its validated properties."""

    interval: timedelta = timedelta(seconds=60)
    connect_timeout: timedelta = timedelta(seconds=10)
    # the whole response must arrive within `read_timeout`; one read may wait `read_idle_timeout`
    read_timeout: timedelta = timedelta(seconds=10)
    read_idle_timeout: timedelta = timedelta(seconds=10)
    max_content_length: int = 10 * 1024 * 1024  # Kestra's default
    follow_redirects: bool = True

    # Rendering, conditions and starting the execution, on top of the call; and a message that waits
    # in a busy queue before a worker takes it.
    MARGIN = timedelta(seconds=30)

    @classmethod
    def of(cls, trigger: Mapping[str, Any]) -> HttpPolling:
        options = trigger.get("options") or {}
        read = _duration(options.get("readTimeout"), cls.read_timeout)
        return cls(
            interval=_duration(trigger.get("interval"), cls.interval),
            connect_timeout=_duration(options.get("connectTimeout"), cls.connect_timeout),
            read_timeout=read,
            read_idle_timeout=min(_duration(options.get("readIdleTimeout"), read), read),
            max_content_length=int(options.get("maxContentLength") or cls.max_content_length),
            follow_redirects=options.get("followRedirects") is not False,
        )

    @property
    def call_budget(self) -> timedelta:
        """The longest a call can take: connecting, then reading (the last read may start just before
        the read deadline and wait its idle timeout)."""
        return self.connect_timeout + self.read_timeout + self.read_idle_timeout

    @property
    def lease(self) -> timedelta:
        """How long an evaluation holds its trigger: past it, another tick may take the trigger over."""
        return self.call_budget + self.MARGIN


def _duration(value: Any, default: timedelta) -> timedelta:
    return default if value is None else parse_duration(value)


def polling_config(trigger: Mapping[str, Any]) -> dict[str, Any]:
    """What a polling trigger's state row keeps of its definition: every property but `id` and
    `type`. A change of any of them plans a new evaluation at once."""
    return {key: value for key, value in trigger.items() if key not in ("id", "type")}
