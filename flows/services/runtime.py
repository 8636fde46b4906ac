"""What a task sees while it runs: the RunContext, its logger, and the expression services."""

from __future__ import annotations

import base64
import binascii
import os
import threading
import time
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.utils import timezone

from flows.errors import ExpressionError, TaskFailed
from flows.expressions import Renderer
from flows.models import LogEntry
from flows.services import kv as kv_store
from flows.services.credentials import CredentialError, token_for
from flows.services.rows import insert_rows
from flows.services.secrets import find_secret
from flows.storage import (
    SCHEME,
    execution_prefix,
    namespace_file,
    namespace_root,
    storage_for,
    storage_for_uri,
)

LEVELS = {"TRACE": 0, "DEBUG": 1, "INFO": 2, "WARN": 3, "ERROR": 4}
_LEVEL_ALIASES = {"WARNING": "WARN", "CRITICAL": "ERROR", "FATAL": "ERROR"}
MASK = "******"

renderer = Renderer()


def normalize_level(level: str) -> str:
    upper = level.upper()
    upper = _LEVEL_ALIASES.get(upper, upper)
    if upper not in LEVELS:
        raise ValueError(f"unknown log level `{level}`")
    return upper


class Masker:
    """Replaces secret values, and their base64 forms, with ******."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._longest_first: list[str] = []
        for value in secrets:
            self.add(value)

    def add(self, value: str) -> None:
        if not value or len(value) < 3:
            return  # masking one or two characters would mangle every message
        self._secrets.add(value)
        self._secrets.add(base64.b64encode(value.encode()).decode())
        # Longest first, so a secret containing another is masked whole; sorted here, not per line.
        self._longest_first = sorted(self._secrets, key=len, reverse=True)

    @property
    def values(self) -> list[str]:
        return list(self._longest_first)

    def mask(self, text: str) -> str:
        for secret in self._longest_first:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def mask_value(self, value: Any) -> Any:
        if not self._secrets:
            return value
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, list):
            return [self.mask_value(item) for item in value]
        if isinstance(value, dict):
            return {key: self.mask_value(item) for key, item in value.items()}
        return value


class LogWriter:
    """Buffers execution log entries and writes them in batches (one INSERT per flush)."""

    _FLUSH_EVERY = 0.25  # seconds: keeps `runflow` streaming while bounding INSERTs
    _FLUSH_SIZE = 200

    def __init__(
        self, *, tenant: str, namespace: str, flow_id: str, execution_id: str, masker: Masker
    ) -> None:
        self._base = {
            "tenant_id": tenant,
            "namespace": namespace,
            "flow_id": flow_id,
            "execution_id": execution_id,
        }
        self.masker = masker
        self._buffer: list[LogEntry] = []
        self._last_flush = time.monotonic()
        self._lock = threading.Lock()

    def write(
        self, level: str, message: str, *, taskrun_id: str | None, task_id: str | None, attempt: int | None
    ) -> None:
        entry = LogEntry(
            **self._base,
            taskrun_id=taskrun_id,
            task_id=task_id,
            attempt_number=attempt,
            timestamp=timezone.now(),
            level=level,
            message=self.masker.mask(message),
        )
        with self._lock:
            self._buffer.append(entry)
            due = (
                len(self._buffer) >= self._FLUSH_SIZE
                or time.monotonic() - self._last_flush > self._FLUSH_EVERY
            )
        if due:
            self.flush()

    def flush_if_due(self) -> None:
        with self._lock:
            due = bool(self._buffer) and time.monotonic() - self._last_flush > self._FLUSH_EVERY
        if due:
            self.flush()

    def flush(self) -> None:
        insert_rows(self.take())

    def take(self) -> list[LogEntry]:
        """The lines not written yet, for the caller to write (it then owns them)."""
        with self._lock:
            batch, self._buffer = self._buffer, []
            self._last_flush = time.monotonic()
        return batch


class TaskLogger:
    """The execution log of one attempt; entries below the task's `logLevel` are not stored."""

    def __init__(
        self,
        writer: LogWriter,
        *,
        taskrun_id: str | None,
        task_id: str | None,
        attempt: int | None,
        min_level: str | None,
    ) -> None:
        self._writer = writer
        self._taskrun_id = taskrun_id
        self._task_id = task_id
        self._attempt = attempt
        self._min = LEVELS[normalize_level(min_level)] if min_level else 0

    def flush_if_due(self) -> None:
        self._writer.flush_if_due()

    def log(self, level: str, message: str) -> None:
        level = normalize_level(level)
        if LEVELS[level] < self._min:
            return
        self._writer.write(
            level, str(message), taskrun_id=self._taskrun_id, task_id=self._task_id, attempt=self._attempt
        )

    def trace(self, message: str) -> None:
        self.log("TRACE", message)

    def debug(self, message: str) -> None:
        self.log("DEBUG", message)

    def info(self, message: str) -> None:
        self.log("INFO", message)

    def warning(self, message: str) -> None:
        self.log("WARN", message)

    def error(self, message: str) -> None:
        self.log("ERROR", message)


def read_secret(key: str) -> str:
    """A secret as Kestra's open-source edition reads it: env `SECRET_<KEY>`, base64-encoded."""
    raw = os.environ.get(f"SECRET_{key}")
    if raw is None:
        raise ExpressionError(f"Cannot find secret for key '{key}'.")
    try:
        return base64.b64decode(raw, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ExpressionError(f"secret '{key}': SECRET_{key} is not valid base64") from exc


def kv_lookup(tenant: str, namespace: str, key: str) -> tuple[bool, Any]:
    return kv_store.lookup(tenant, namespace, key)


class ExpressionServicesImpl:
    """I/O functions of expressions (`read`, `secret`, `kv`, ...) for one execution."""

    def __init__(self, *, tenant: str, namespace: str, execution_id: str, masker: Masker) -> None:
        self.tenant = tenant
        self.namespace = namespace
        self.execution_id = execution_id
        self.masker = masker

    def read(self, path: str) -> str:
        if path.startswith(SCHEME):
            local = namespace_file(self.tenant, path)
            if local is not None:
                return local.read_text()
            return storage_for_uri(self.tenant, path).read_bytes(self.tenant, path).decode()
        target = namespace_root(self.tenant, self.namespace) / path.lstrip("/")
        if ".." in Path(path).parts or not target.is_file():
            raise ExpressionError(f"read(): no namespace file `{path}` in `{self.namespace}`")
        return target.read_text()

    def secret(self, key: str) -> str:
        # A secret stored for the namespace (or the nearest parent) wins over the environment.
        stored = find_secret(self.tenant, self.namespace, key)
        value = read_secret(key) if stored is None else stored
        self.masker.add(value)
        return value

    def kv(self, key: str, namespace: str | None, error_on_missing: bool) -> Any:
        found, value = kv_lookup(self.tenant, namespace or self.namespace, key)
        if not found and error_on_missing:
            raise ExpressionError(
                f"The key '{key}' does not exist in the namespace '{namespace or self.namespace}'."
            )
        return value

    def error_logs(self) -> list[dict[str, Any]]:
        return [
            {"taskId": task_id, "message": message, "timestamp": timestamp.isoformat(), "level": "ERROR"}
            for task_id, message, timestamp in LogEntry.objects.filter(
                execution_id=self.execution_id, level="ERROR"
            ).values_list("task_id", "message", "timestamp")
        ]

    def file_uri(self, path: str) -> str:
        return f"kestra:///{'/'.join(self.namespace.split('.'))}/_files/{path.lstrip('/')}"

    def credential(self, name: str) -> str:
        # The tenant's credential, if the flow's namespace may use it; the token is masked like a secret.
        try:
            token = token_for(self.tenant, name, namespace=self.namespace)
        except CredentialError as error:
            raise ExpressionError(str(error)) from error
        self.masker.add(token)
        return token


class RunContextImpl:
    """The RunContext of one attempt (see `plugins.base.RunContext`)."""

    def __init__(
        self,
        *,
        tenant: str,
        namespace: str,
        flow_id: str,
        execution_id: str,
        taskrun_id: str,
        task_id: str,
        attempt: int,
        working_dir: Path,
        logger: TaskLogger,
        variables: dict[str, Any],
        services: ExpressionServicesImpl,
        deadline: float | None,
        is_killed: Any,
    ) -> None:
        self.tenant, self.namespace, self.flow_id = tenant, namespace, flow_id
        self.execution_id, self.taskrun_id, self.task_id, self.attempt = (
            execution_id,
            taskrun_id,
            task_id,
            attempt,
        )
        self._working_dir = working_dir
        self.logger = logger
        self.deadline = deadline
        self._variables = variables
        self._services = services
        self._is_killed = is_killed
        self._killed_event = threading.Event()
        self.metrics: list[dict[str, Any]] = []

    @property
    def working_dir(self) -> Path:
        """Created on first use: most tasks (Log, Return...) never touch a file."""
        self._working_dir.mkdir(parents=True, exist_ok=True)
        return self._working_dir

    def render(self, value: Any, extra_variables: dict[str, Any] | None = None) -> Any:
        variables = {**self._variables, **extra_variables} if extra_variables else self._variables
        return renderer.render(value, variables, self._services)

    def render_typed(self, value: Any) -> Any:
        return renderer.render_typed(value, self._variables, self._services)

    def variables(self) -> dict[str, Any]:
        return self._variables

    def _key(self, name: str) -> str:
        return f"{execution_prefix(self.namespace, self.flow_id, self.execution_id)}/tasks/{self.task_id}/{self.taskrun_id}/{name}"

    def put_file(self, local_path: Path, name: str | None = None) -> str:
        storage = storage_for(self.tenant, self.namespace)
        return storage.put(self.tenant, self._key(name or Path(local_path).name), Path(local_path))

    def get_file(self, uri: str) -> Path:
        # A URI names its namespace: a subflow reads its parent's files from the parent's storage.
        return namespace_file(self.tenant, uri) or storage_for_uri(self.tenant, uri).path(self.tenant, uri)

    def namespace_files(self, namespace: str | None = None) -> dict[str, Path]:
        root = namespace_root(self.tenant, namespace or self.namespace)
        if not root.is_dir():
            return {}
        return {str(path.relative_to(root)): path for path in sorted(root.rglob("*")) if path.is_file()}

    def kv_get(self, namespace: str, key: str) -> tuple[bool, Any]:
        return kv_lookup(self.tenant, namespace, key)

    def kv_set(
        self,
        namespace: str,
        key: str,
        value: Any,
        *,
        value_type: str | None = None,
        ttl_seconds: float | None = None,
        overwrite: bool = True,
    ) -> None:
        if not overwrite and self.kv_get(namespace, key)[0]:
            raise TaskFailed(
                f"Cannot set value for key '{key}'. Key already exists and `overwrite` is set to `false`."
            )
        try:
            kv_store.set_value(
                self.tenant,
                namespace,
                key,
                value,
                value_type=value_type,
                ttl=timedelta(seconds=ttl_seconds) if ttl_seconds else None,
            )
        except kv_store.InvalidKey as error:
            raise TaskFailed(str(error)) from error

    def kv_delete(self, namespace: str, key: str) -> bool:
        return kv_store.delete_value(self.tenant, namespace, key)

    def add_secret(self, value: str) -> None:
        self._services.masker.add(value)

    def metric(
        self, name: str, value: float, metric_type: str = "counter", tags: dict[str, str] | None = None
    ) -> None:
        self.metrics.append({"name": name, "value": value, "type": metric_type, "tags": tags or {}})

    def wait(self, seconds: float) -> bool:
        end = time.monotonic() + seconds
        while True:
            now = time.monotonic()
            if self.deadline is not None and now >= self.deadline:
                raise TaskFailed("Timeout: the task ran longer than its `timeout`")
            if now >= end:
                return True
            if self.is_killed():
                return False
            limit = end if self.deadline is None else min(end, self.deadline)
            self._killed_event.wait(min(limit - now, 0.5))

    def is_killed(self) -> bool:
        # Runners call this about ten times a second while a task runs: it is also when buffered
        # log lines get written, so they stream even when the task goes quiet.
        self.logger.flush_if_due()
        if self._killed_event.is_set():
            return True
        if self._is_killed():
            self._killed_event.set()
            return True
        return False
