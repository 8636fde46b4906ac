"""Flow YAML -> validated `FlowSpec`, with every problem reported at once.

`load_flow` parses with `marked_yaml` (positions of every node), checks the whole document and
raises one `FlowValidationError` listing every violation with its path (`tasks[1].retry.interval`)
and its 1-based line and column.

Kestra rules reproduced here (Kestra's own validation annotations, behaviour only):
- flow id `^[a-zA-Z0-9][a-zA-Z0-9._-]*` (at most 100 characters), namespace
  `^[a-z0-9][a-z0-9._-]*` (at most 150), task and trigger ids `^[a-zA-Z0-9][a-zA-Z0-9_-]*`,
  input, output and SLA ids `^[a-zA-Z0-9][.a-zA-Z0-9_-]*`; task ids are unique in the flow;
- `tasks` must not be empty; any other property is checked against the flow's and the task
  type's known properties (unknown ones are errors);
- `revision`, `deleted`, `tenantId` and `updated` are fields a Kestra server adds when it
  returns a flow; clients send them back, so they are accepted and ignored (persistence owns
  the revision);
- pluginDefaults (legacy `taskDefaults`) apply to a task when their `type` equals or is a prefix
  of the task's canonical type or of the type as written. Defaults fill only missing
  properties (deep-merged into maps), forced ones overwrite; a later matching default wins over
  an earlier one. A default for a property the task type does not have is ignored, since one
  default may target a whole family of types through a prefix.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from flows.errors import FlowValidationError, Violation
from flows.spec.conditions import check_condition
from flows.spec.cron import CronError, parse_cron
from flows.spec.durations import parse_duration
from flows.spec.flow_trigger import FLOW_TRIGGER_TYPES, check_flow_trigger, check_states
from flows.spec.marked_yaml import (
    Mark,
    MarkedDict,
    MarkedList,
    join_path,
    load_marked,
    mark_of,
    plain,
    violation,
)
from flows.spec.model import (
    ConcurrencySpec,
    DagNode,
    FlowSpec,
    InputSpec,
    InputType,
    OutputSpec,
    PluginDefault,
    RetrySpec,
    SlaSpec,
    TaskSpec,
)
from flows.spec.polling import POLLING_TRIGGER_TYPES, check_polling_trigger
from flows.spec.registry import INTERNAL_TASKS, TaskTypes

FLOW_ID_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9._-]*"
NAMESPACE_PATTERN = r"^[a-z0-9][a-z0-9._-]*"
TASK_ID_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_-]*"
INPUT_ID_PATTERN = r"^[a-zA-Z0-9][.a-zA-Z0-9_-]*"

INPUT_TYPES: frozenset[str] = frozenset(get_args(InputType))

_FLOW_KEYS = frozenset(
    {
        "id", "namespace", "description", "labels", "inputs", "variables", "tasks", "errors", "finally",
        "outputs", "pluginDefaults", "taskDefaults", "retry", "sla", "concurrency", "triggers", "disabled",
    }
)  # fmt: skip
# Added by a Kestra server to the flows it returns; accepted from clients and ignored.
_SERVER_KEYS = frozenset({"revision", "deleted", "tenantId", "updated"})
_TASK_COMMON_KEYS = frozenset(
    {
        "id", "type", "description", "retry", "timeout", "runIf", "allowFailure", "allowWarning", "disabled",
        "logLevel", "logToFile", "workerGroup",
    }
)  # fmt: skip
_FLOWABLE_KEYS = frozenset({"errors", "finally"})
_LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")
_RETRY_KEYS = frozenset(
    {
        "type", "maxAttempts", "maxAttempt", "maxDuration", "interval", "maxInterval", "minInterval",
        "delayFactor", "warningOnRetry", "behavior",
    }
)  # fmt: skip
_RETRY_REQUIRED = {
    "constant": ("interval",),
    "exponential": ("interval", "maxInterval"),
    "random": ("minInterval", "maxInterval"),
}
_INPUT_COMMON_KEYS = frozenset(
    {"id", "name", "type", "description", "displayName", "required", "defaults", "dependsOn", "prefill"}
)
_INPUT_OPTION_KEYS = frozenset(
    {
        "min", "max", "minLength", "maxLength", "validator", "values", "itemType", "allowCustomValue",
        "expression", "after", "before", "isRadio", "autoSelectFirst", "allowedFileExtensions", "extension",
    }
)  # fmt: skip
_OUTPUT_KEYS = frozenset({"id", "type", "value", "description", "displayName", "required"})
_SLA_KEYS = frozenset({"id", "type", "behavior", "duration", "assert", "labels"})


@dataclass
class _Checker:
    """Collects violations while the document is walked."""

    registry: TaskTypes
    violations: list[Violation] = field(default_factory=list)
    task_paths: dict[str, str] = field(default_factory=dict)  # task id -> path of its first use
    defaults: list[tuple[PluginDefault, MarkedDict]] = field(default_factory=list)

    def add(self, path: str, message: str, mark: Mark | None) -> None:
        self.violations.append(violation(path, message, mark))

    # Typed getters: each returns the value, or None after recording a violation.

    def string(self, data: MarkedDict, key: str, path: str, *, required: bool = False) -> str | None:
        value = data.get(key)
        if value is None:
            if required:
                self.add(join_path(path, key), "missing required property", data.key_mark_of(key))
            return None
        if isinstance(value, bool | int | float):
            return label_text(value)  # Kestra's reader turns scalars into strings for text fields
        if not isinstance(value, str):
            self.add(join_path(path, key), f"must be a string, got {_describe(value)}", data.mark_of(key))
            return None
        return value

    def boolean(self, data: MarkedDict, key: str, path: str, default: bool = False) -> bool:
        value = data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.add(
                join_path(path, key), f"must be true or false, got {_describe(value)}", data.mark_of(key)
            )
            return default
        return value

    def integer(self, data: MarkedDict, key: str, path: str, *, minimum: int | None = None) -> int | None:
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(join_path(path, key), f"must be an integer, got {_describe(value)}", data.mark_of(key))
            return None
        if minimum is not None and value < minimum:
            self.add(join_path(path, key), f"must be >= {minimum}", data.mark_of(key))
            return None
        return value

    def duration(self, data: MarkedDict, key: str, path: str) -> timedelta | None:
        value = data.get(key)
        if value is None:
            return None
        try:
            return parse_duration(value)
        except ValueError as error:
            self.add(join_path(path, key), str(error), data.mark_of(key))
            return None

    def choice(
        self, data: MarkedDict, key: str, path: str, choices: Iterable[str], default: str | None
    ) -> str | None:
        value = data.get(key)
        if value is None:
            return default
        choices = tuple(choices)
        if value not in choices:
            self.add(
                join_path(path, key), f"must be one of {', '.join(choices)}, got {value!r}", data.mark_of(key)
            )
            return default
        return str(value)

    def mapping(self, parent: Any, key: Any, path: str, what: str = "a mapping") -> MarkedDict | None:
        value = parent[key]
        if not isinstance(value, MarkedDict):
            self.add(path, f"must be {what}, got {_describe(value)}", mark_of(parent, key))
            return None
        return value

    def sequence(self, data: MarkedDict, key: str, path: str) -> MarkedList | None:
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, MarkedList):
            self.add(join_path(path, key), f"must be a list, got {_describe(value)}", data.mark_of(key))
            return None
        return value

    def unknown_keys(self, data: MarkedDict, path: str, known: Iterable[str]) -> None:
        known = frozenset(known)
        for key in data:
            if key not in known:
                self.add(join_path(path, key), "unknown property", data.key_mark_of(key))

    def identifier(
        self, data: MarkedDict, key: str, path: str, pattern: str, max_length: int | None = None
    ) -> str | None:
        value = self.string(data, key, path, required=True)
        if value is None:
            return None
        if not re.fullmatch(pattern.lstrip("^"), value):
            self.add(join_path(path, key), f"must match {pattern}, got {value!r}", data.mark_of(key))
            return None
        if max_length is not None and len(value) > max_length:
            self.add(join_path(path, key), f"must be at most {max_length} characters long", data.mark_of(key))
            return None
        return value


def load_flow(source: str, registry: TaskTypes) -> FlowSpec:
    """Parse and validate a flow written in Kestra's YAML syntax.

    Raises `FlowValidationError` listing every violation (path, message, line, column) when the
    YAML is malformed or the flow is invalid; returns the frozen `FlowSpec` otherwise.
    """
    try:
        document = load_marked(source)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        position = (mark.line + 1, mark.column + 1) if mark else None
        problem = " ".join(part for part in (error.context, error.problem) if part)
        raise FlowValidationError([violation("", f"invalid YAML: {problem}", position)]) from error
    except yaml.YAMLError as error:
        raise FlowValidationError([Violation(path="", message=f"invalid YAML: {error}")]) from error

    checker = _Checker(registry)
    if not isinstance(document, MarkedDict):
        checker.add("", f"a flow must be a YAML mapping, got {_describe(document)}", (1, 1))
        raise FlowValidationError(checker.violations)
    flow = _check_flow(checker, document, source)
    if checker.violations or flow is None:
        # Document order; a default's value is reported at its own line, so sort rather than trust the walk.
        ordered = sorted(checker.violations, key=lambda v: (v.line is None, v.line or 0, v.column or 0))
        raise FlowValidationError(ordered)
    return flow


def _check_flow(checker: _Checker, doc: MarkedDict, source: str) -> FlowSpec | None:
    checker.unknown_keys(doc, "", _FLOW_KEYS | _SERVER_KEYS)
    flow_id = checker.identifier(doc, "id", "", FLOW_ID_PATTERN, max_length=100)
    namespace = checker.identifier(doc, "namespace", "", NAMESPACE_PATTERN, max_length=150)
    description = checker.string(doc, "description", "")
    disabled = checker.boolean(doc, "disabled", "")
    labels = _check_labels(checker, doc, "labels") if doc.get("labels") is not None else ()
    variables: dict[str, Any] = {}
    if (
        doc.get("variables") is not None
        and (found := checker.mapping(doc, "variables", "variables")) is not None
    ):
        variables = plain(found)
    inputs = _check_inputs(checker, doc)
    outputs = _check_outputs(checker, doc)
    _check_plugin_defaults(checker, doc)
    retry = _check_retry(checker, doc, "retry", "retry") if doc.get("retry") is not None else None
    sla = _check_sla(checker, doc)
    concurrency = _check_concurrency(checker, doc) if doc.get("concurrency") is not None else None
    triggers = _check_triggers(checker, doc)

    tasks_value = doc.get("tasks")
    if not tasks_value:
        mark = doc.mark_of("tasks") if "tasks" in doc else doc.mark
        checker.add("tasks", "must not be empty", mark)
    tasks = _check_task_list(checker, doc, "tasks", "tasks")
    errors = _check_task_list(checker, doc, "errors", "errors")
    finally_ = _check_task_list(checker, doc, "finally", "finally")

    if flow_id is None or namespace is None:
        return None
    return FlowSpec(
        id=flow_id,
        namespace=namespace,
        tasks=tasks,
        source=source,
        description=description,
        labels=labels,
        inputs=inputs,
        variables=variables,
        errors=errors,
        finally_=finally_,
        outputs=outputs,
        plugin_defaults=tuple(default for default, _ in checker.defaults),
        retry=retry,
        sla=sla,
        concurrency=concurrency,
        disabled=disabled,
        triggers=triggers,
    )


# ---------------------------------------------------------------- labels, inputs, outputs


def label_text(value: Any) -> str:
    """A label value as Kestra stores it: booleans `true`/`false`, numbers as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _label_value(checker: _Checker, value: Any, path: str, mark: Mark | None) -> str | None:
    if value is None:
        checker.add(path, "label value must not be null", mark)
        return None
    if isinstance(value, dict | list):
        checker.add(path, f"label value must be a string, got {_describe(value)}", mark)
        return None
    return label_text(value)


def _check_labels(
    checker: _Checker, parent: MarkedDict, key: str, path: str | None = None
) -> tuple[tuple[str, str], ...]:
    path = path or key
    value = parent[key]
    labels: list[tuple[str, str]] = []
    if isinstance(value, MarkedDict):
        for label_key, label_value in value.items():
            text = _label_value(checker, label_value, join_path(path, label_key), value.mark_of(label_key))
            if text is not None:
                labels.append((label_key, text))
    elif isinstance(value, MarkedList):
        for index, _ in enumerate(value):
            item_path = f"{path}[{index}]"
            entry = checker.mapping(value, index, item_path, "a mapping with key and value")
            if entry is None:
                continue
            checker.unknown_keys(entry, item_path, ("key", "value"))
            label_key = checker.string(entry, "key", item_path, required=True)
            text = _label_value(
                checker, entry.get("value"), join_path(item_path, "value"), entry.mark_of("value")
            )
            if label_key is not None and text is not None:
                labels.append((label_key, text))
    else:
        checker.add(
            path, f"must be a map or a list of {{key, value}}, got {_describe(value)}", parent.mark_of(key)
        )
    return tuple(labels)


def _check_inputs(checker: _Checker, doc: MarkedDict) -> tuple[InputSpec, ...]:
    items = checker.sequence(doc, "inputs", "")
    if items is None:
        return ()
    inputs: list[InputSpec] = []
    seen: dict[str, str] = {}
    for index, _ in enumerate(items):
        path = f"inputs[{index}]"
        data = checker.mapping(items, index, path)
        if data is None:
            continue
        checker.unknown_keys(data, path, _INPUT_COMMON_KEYS | _INPUT_OPTION_KEYS)
        # `name` is the legacy spelling of `id`.
        id_key = "id" if "id" in data or "name" not in data else "name"
        input_id = checker.identifier(data, id_key, path, INPUT_ID_PATTERN)
        input_type = checker.string(data, "type", path, required=True)
        if input_type is not None and input_type not in INPUT_TYPES:
            checker.add(f"{path}.type", f"unknown input type {input_type!r}", data.mark_of("type"))
            input_type = None
        required = checker.boolean(data, "required", path, default=True)
        display_name = checker.string(data, "displayName", path)
        description = checker.string(data, "description", path)
        if (
            input_type in ("SELECT", "ENUM", "MULTISELECT")
            and data.get("values") is None
            and "expression" not in data
        ):
            checker.add(f"{path}.values", "missing required property", data.mark)
        if input_type == "ARRAY":
            item_type = checker.string(data, "itemType", path, required=True)
            if item_type is not None and item_type not in INPUT_TYPES:
                checker.add(f"{path}.itemType", f"unknown input type {item_type!r}", data.mark_of("itemType"))
        if input_id is None or input_type is None:
            continue
        if input_id in seen:
            checker.add(
                join_path(path, id_key),
                f"duplicate input id {input_id!r}, already used by {seen[input_id]}",
                data.mark_of(id_key),
            )
            continue
        seen[input_id] = path
        options = {
            key: plain(value)
            for key, value in data.items()
            if key in _INPUT_OPTION_KEYS or key in ("dependsOn", "prefill")
        }
        inputs.append(
            InputSpec(
                id=input_id,
                type=input_type,
                required=required,
                defaults=plain(data.get("defaults")),
                display_name=display_name,
                description=description,
                options=options,
                line=data.mark[0] or None,
            )
        )
    return tuple(inputs)


def _check_outputs(checker: _Checker, doc: MarkedDict) -> tuple[OutputSpec, ...]:
    items = checker.sequence(doc, "outputs", "")
    if items is None:
        return ()
    outputs: list[OutputSpec] = []
    for index, _ in enumerate(items):
        path = f"outputs[{index}]"
        data = checker.mapping(items, index, path)
        if data is None:
            continue
        checker.unknown_keys(data, path, _OUTPUT_KEYS)
        output_id = checker.identifier(data, "id", path, INPUT_ID_PATTERN)
        output_type = checker.string(data, "type", path, required=True)
        if output_type is not None and output_type not in INPUT_TYPES:
            checker.add(f"{path}.type", f"unknown output type {output_type!r}", data.mark_of("type"))
            output_type = None
        if data.get("value") is None:
            checker.add(f"{path}.value", "missing required property", data.key_mark_of("value"))
        description = checker.string(data, "description", path)
        required = checker.boolean(data, "required", path, default=True)
        if output_id is not None and output_type is not None:
            outputs.append(
                OutputSpec(
                    output_id,
                    output_type,
                    plain(data.get("value")),
                    description=description,
                    required=required,
                )
            )
    return tuple(outputs)


# ---------------------------------------------------------------- flow-level options


def _check_plugin_defaults(checker: _Checker, doc: MarkedDict) -> None:
    """Record the flow's defaults in `checker.defaults`, before any task is checked."""
    for key in ("taskDefaults", "pluginDefaults"):  # legacy first: pluginDefaults win on conflicts
        items = checker.sequence(doc, key, "")
        if items is None:
            continue
        for index, _ in enumerate(items):
            path = f"{key}[{index}]"
            data = checker.mapping(items, index, path)
            if data is None:
                continue
            checker.unknown_keys(data, path, ("type", "values", "forced"))
            type_prefix = checker.string(data, "type", path, required=True)
            forced = checker.boolean(data, "forced", path)
            values = MarkedDict()
            if data.get("values") is not None:
                values = checker.mapping(data, "values", f"{path}.values") or MarkedDict()
            if type_prefix is not None:
                checker.defaults.append((PluginDefault(type_prefix, plain(values), forced), values))


def _check_retry(checker: _Checker, parent: MarkedDict, key: str, path: str) -> RetrySpec | None:
    data = checker.mapping(parent, key, path)
    if data is None:
        return None
    checker.unknown_keys(data, path, _RETRY_KEYS)
    retry_type = checker.choice(data, "type", path, ("constant", "exponential", "random"), None)
    if retry_type is None and data.get("type") is None:
        checker.add(f"{path}.type", "missing required property", data.key_mark_of("type"))
    # `maxAttempt` is the 0.x spelling of `maxAttempts`.
    attempts_key = "maxAttempts" if "maxAttempts" in data or "maxAttempt" not in data else "maxAttempt"
    max_attempts = checker.integer(data, attempts_key, path, minimum=1)
    durations = {
        name: checker.duration(data, name, path)
        for name in ("maxDuration", "interval", "maxInterval", "minInterval")
    }
    for name in _RETRY_REQUIRED.get(retry_type or "", ()):
        if data.get(name) is None:
            checker.add(
                f"{path}.{name}",
                f"missing required property for a {retry_type} retry",
                data.key_mark_of(name),
            )
    delay_factor = data.get("delayFactor")
    if delay_factor is not None and (
        isinstance(delay_factor, bool) or not isinstance(delay_factor, int | float)
    ):
        checker.add(
            f"{path}.delayFactor",
            f"must be a number, got {_describe(delay_factor)}",
            data.mark_of("delayFactor"),
        )
        delay_factor = None
    warning_on_retry = checker.boolean(data, "warningOnRetry", path)
    behavior = checker.choice(
        data, "behavior", path, ("RETRY_FAILED_TASK", "CREATE_NEW_EXECUTION"), "RETRY_FAILED_TASK"
    )
    if retry_type is None:
        return None
    return RetrySpec(
        type=retry_type,  # type: ignore[arg-type]
        max_attempts=max_attempts,
        max_duration=durations["maxDuration"],
        interval=durations["interval"],
        max_interval=durations["maxInterval"],
        min_interval=durations["minInterval"],
        delay_factor=float(delay_factor) if delay_factor is not None else None,
        warning_on_retry=warning_on_retry,
        behavior=behavior,  # type: ignore[arg-type]
    )


def _check_sla(checker: _Checker, doc: MarkedDict) -> tuple[SlaSpec, ...]:
    items = checker.sequence(doc, "sla", "")
    if items is None:
        return ()
    found: list[SlaSpec] = []
    for index, _ in enumerate(items):
        path = f"sla[{index}]"
        data = checker.mapping(items, index, path)
        if data is None:
            continue
        checker.unknown_keys(data, path, _SLA_KEYS)
        sla_id = checker.identifier(data, "id", path, INPUT_ID_PATTERN)
        sla_type = checker.choice(data, "type", path, ("MAX_DURATION", "EXECUTION_ASSERTION"), None)
        if data.get("type") is None:
            checker.add(f"{path}.type", "missing required property", data.key_mark_of("type"))
        behavior = checker.choice(data, "behavior", path, ("FAIL", "CANCEL", "NONE"), None)
        if data.get("behavior") is None:
            checker.add(f"{path}.behavior", "missing required property", data.key_mark_of("behavior"))
        duration = checker.duration(data, "duration", path)
        assertion = checker.string(data, "assert", path)
        if sla_type == "MAX_DURATION" and data.get("duration") is None:
            checker.add(
                f"{path}.duration",
                "missing required property for a MAX_DURATION SLA",
                data.key_mark_of("duration"),
            )
        if sla_type == "EXECUTION_ASSERTION" and data.get("assert") is None:
            checker.add(
                f"{path}.assert",
                "missing required property for an EXECUTION_ASSERTION SLA",
                data.key_mark_of("assert"),
            )
        labels = (
            _check_labels(checker, data, "labels", f"{path}.labels") if data.get("labels") is not None else ()
        )
        if sla_id is not None and sla_type is not None and behavior is not None:
            found.append(
                SlaSpec(sla_id, sla_type, behavior, duration=duration, assert_=assertion, labels=dict(labels))  # type: ignore[arg-type]
            )
    return tuple(found)


def _check_concurrency(checker: _Checker, doc: MarkedDict) -> ConcurrencySpec | None:
    data = checker.mapping(doc, "concurrency", "concurrency")
    if data is None:
        return None
    checker.unknown_keys(data, "concurrency", ("limit", "behavior"))
    if data.get("limit") is None:
        checker.add("concurrency.limit", "missing required property", data.key_mark_of("limit"))
    limit = checker.integer(data, "limit", "concurrency", minimum=1)
    behavior = checker.choice(data, "behavior", "concurrency", ("QUEUE", "CANCEL", "FAIL"), "QUEUE")
    if limit is None:
        return None
    return ConcurrencySpec(limit=limit, behavior=behavior)  # type: ignore[arg-type]


WEBHOOK_TRIGGER_TYPES = (
    "io.kestra.plugin.core.trigger.Webhook",
    "io.kestra.core.models.triggers.types.Webhook",
)


SCHEDULE_TRIGGER_TYPES = (
    "io.kestra.plugin.core.trigger.Schedule",
    "io.kestra.core.models.triggers.types.Schedule",
)
RECOVER_MISSED = ("ALL", "LAST", "NONE")


def _check_schedule(checker: _Checker, data: MarkedDict, path: str) -> None:
    cron = checker.string(data, "cron", path, required=True)
    timezone = checker.string(data, "timezone", path)
    with_seconds = checker.boolean(data, "withSeconds", path)
    if cron is not None:
        try:
            parse_cron(cron, timezone, with_seconds)
        except CronError as error:
            field = "timezone" if "time zone" in str(error) else "cron"
            checker.add(join_path(path, field), str(error), data.mark_of(field))
    recover = checker.string(data, "recoverMissedSchedules", path)
    if recover is not None and recover not in RECOVER_MISSED:
        checker.add(
            join_path(path, "recoverMissedSchedules"),
            f"must be one of {', '.join(RECOVER_MISSED)}, got {recover!r}",
            data.mark_of("recoverMissedSchedules"),
        )
    delay = checker.string(data, "lateMaximumDelay", path)
    if delay is not None:
        try:
            parse_duration(delay)
        except ValueError as error:
            checker.add(join_path(path, "lateMaximumDelay"), str(error), data.mark_of("lateMaximumDelay"))


def _check_triggers(checker: _Checker, doc: MarkedDict) -> tuple[dict[str, Any], ...]:
    items = checker.sequence(doc, "triggers", "")
    if items is None:
        return ()
    triggers: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for index, _ in enumerate(items):
        path = f"triggers[{index}]"
        data = checker.mapping(items, index, path)
        if data is None:
            continue
        trigger_id = checker.identifier(data, "id", path, TASK_ID_PATTERN)
        trigger_type = checker.string(data, "type", path, required=True)
        if trigger_type in WEBHOOK_TRIGGER_TYPES:
            checker.string(data, "key", path, required=True)
        elif trigger_type in SCHEDULE_TRIGGER_TYPES:
            _check_schedule(checker, data, path)
        elif trigger_type in FLOW_TRIGGER_TYPES:
            check_flow_trigger(checker, data, path)
        elif trigger_type in POLLING_TRIGGER_TYPES:
            check_polling_trigger(checker, data, path)
        check_states(checker, data, "stopAfter", path)  # a started execution's end that disables it
        for index, condition in enumerate(checker.sequence(data, "conditions", path) or ()):
            checker.violations.extend(
                check_condition(
                    condition,
                    f"{path}.conditions[{index}]",
                    with_execution=trigger_type in FLOW_TRIGGER_TYPES,
                )
            )
        if trigger_id is not None and trigger_id in seen:
            checker.add(
                f"{path}.id",
                f"duplicate trigger id {trigger_id!r}, already used by {seen[trigger_id]}",
                data.mark_of("id"),
            )
        elif trigger_id is not None:
            seen[trigger_id] = path
        triggers.append(plain(data))
    return tuple(triggers)


# ---------------------------------------------------------------- tasks


def _check_task_list(checker: _Checker, parent: MarkedDict, key: str, path: str) -> tuple[TaskSpec, ...]:
    value = parent.get(key)
    if value is None:
        return ()
    if not isinstance(value, MarkedList):
        checker.add(path, f"must be a list of tasks, got {_describe(value)}", parent.mark_of(key))
        return ()
    return _check_task_items(checker, value, path)


def _check_task_items(checker: _Checker, items: MarkedList, path: str) -> tuple[TaskSpec, ...]:
    tasks = []
    for index, _ in enumerate(items):
        task = _check_task(checker, items, index, f"{path}[{index}]")
        if task is not None:
            tasks.append(task)
    return tuple(tasks)


def _check_task(checker: _Checker, parent: Any, key: Any, path: str) -> TaskSpec | None:
    raw = checker.mapping(parent, key, path, "a task (a mapping with id and type)")
    if raw is None:
        return None
    task_id = checker.identifier(raw, "id", path, TASK_ID_PATTERN)
    if task_id is not None:
        if task_id in checker.task_paths:
            checker.add(
                f"{path}.id",
                f"duplicate task id {task_id!r}, already used by {checker.task_paths[task_id]}",
                raw.mark_of("id"),
            )
        else:
            checker.task_paths[task_id] = path
    written_type = checker.string(raw, "type", path, required=True)
    if written_type is None:
        return None
    task_class = checker.registry.get(written_type)
    if task_class is None:
        checker.add(f"{path}.type", f"unknown task type {written_type!r}", raw.mark_of("type"))
        return None

    type_name: str = task_class.type_name
    kind = task_class.kind
    properties_model: type[BaseModel] = task_class.Properties
    task_properties: dict[str, str] = dict(getattr(task_class, "task_properties", {}) or {})
    common = _TASK_COMMON_KEYS | (_FLOWABLE_KEYS if kind == "flowable" else frozenset())
    declared = _declared_properties(properties_model)
    data = _apply_plugin_defaults(
        checker, raw, (type_name, written_type), declared | (common - {"id", "type"})
    )

    own = MarkedDict()
    own.mark = data.mark
    for prop, value in data.items():
        if prop in common:
            continue
        if prop in _FLOWABLE_KEYS:  # errors/finally on a runnable task
            checker.add(
                join_path(path, prop),
                f"unknown property: only flowable tasks have {prop!r}",
                data.key_mark_of(prop),
            )
            continue
        own[prop] = value
        own.key_marks[prop] = data.key_mark_of(prop)
        own.value_marks[prop] = data.mark_of(prop)
    try:
        properties_model.model_validate(own)
    except ValidationError as error:
        _report_pydantic_errors(checker, own, path, error)

    properties: dict[str, Any] = {}
    for prop, value in own.items():
        shape = task_properties.get(prop)
        prop_path = join_path(path, prop)
        if shape is None:
            properties[prop] = plain(value)
        elif shape == "list":
            properties[prop] = _check_task_list(checker, own, prop, prop_path)
        elif shape == "map":
            properties[prop] = _check_task_map(checker, own, prop, prop_path)
        elif shape == "dag":
            properties[prop] = _check_dag(checker, own, prop, prop_path)

    retry = _check_retry(checker, data, "retry", f"{path}.retry") if data.get("retry") is not None else None
    timeout = _check_timeout(checker, data, path)
    run_if = data.get("runIf")
    if run_if is not None and not isinstance(run_if, str | bool):
        checker.add(
            f"{path}.runIf",
            f"must be an expression string or a boolean, got {_describe(run_if)}",
            data.mark_of("runIf"),
        )
        run_if = None
    worker_group = None
    if data.get("workerGroup") is not None and (
        group := checker.mapping(data, "workerGroup", f"{path}.workerGroup")
    ):
        checker.unknown_keys(group, f"{path}.workerGroup", ("key", "fallback"))
        worker_group = checker.string(group, "key", f"{path}.workerGroup")
    checker.boolean(data, "logToFile", path)  # accepted and ignored: logs always go to LogEntry rows
    task = TaskSpec(
        id=task_id or "",
        type=type_name,
        kind=kind,
        path=path,
        line=raw.mark[0] or None,
        description=checker.string(data, "description", path),
        properties=properties,
        retry=retry,
        timeout=timeout,
        run_if=run_if,
        allow_failure=checker.boolean(data, "allowFailure", path),
        allow_warning=checker.boolean(data, "allowWarning", path),
        disabled=checker.boolean(data, "disabled", path),
        log_level=checker.choice(data, "logLevel", path, _LOG_LEVELS, None),
        worker_group=worker_group,
        errors=_check_task_list(checker, data, "errors", f"{path}.errors") if kind == "flowable" else (),
        finally_=_check_task_list(checker, data, "finally", f"{path}.finally") if kind == "flowable" else (),
    )
    internal = getattr(task_class, "internal_tasks", None)
    if internal is not None and task_id is not None:
        # Hidden children (ForEachItem's split, items and merge tasks) live in the properties, so
        # they are found by id, walked and shown like any other task of the flow.
        task = replace(task, properties={**properties, INTERNAL_TASKS: internal(task)})
        for hidden in task.properties[INTERNAL_TASKS]:
            if hidden.id in checker.task_paths:
                checker.add(f"{path}.id", f"task id {hidden.id!r} is already used", raw.mark_of("id"))
            checker.task_paths[hidden.id] = hidden.path
    return task if task_id is not None else None


def _check_timeout(checker: _Checker, data: MarkedDict, path: str) -> timedelta | str | None:
    value = data.get("timeout")
    if isinstance(value, str) and "{{" in value:
        return value  # an expression, rendered when the task runs
    return checker.duration(data, "timeout", path)


def _check_task_map(
    checker: _Checker, parent: MarkedDict, key: str, path: str
) -> dict[str, tuple[TaskSpec, ...]]:
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, MarkedDict):
        checker.add(path, f"must be a map of task lists, got {_describe(value)}", parent.mark_of(key))
        return {}
    return {case: _check_task_list(checker, value, case, join_path(path, case)) for case in value}


def _check_dag(checker: _Checker, parent: MarkedDict, key: str, path: str) -> tuple[DagNode, ...]:
    items = parent.get(key)
    if items is None:
        return ()
    if not isinstance(items, MarkedList):
        checker.add(
            path, f"must be a list of {{task, dependsOn}}, got {_describe(items)}", parent.mark_of(key)
        )
        return ()
    nodes: list[DagNode] = []
    marks: list[tuple[str, Mark]] = []
    for index, _ in enumerate(items):
        node_path = f"{path}[{index}]"
        entry = checker.mapping(items, index, node_path, "a mapping with task and dependsOn")
        if entry is None:
            continue
        checker.unknown_keys(entry, node_path, ("task", "dependsOn"))
        if entry.get("task") is None:
            checker.add(f"{node_path}.task", "missing required property", entry.key_mark_of("task"))
            continue
        task = _check_task(checker, entry, "task", f"{node_path}.task")
        depends_on: list[str] = []
        for dep_index, dependency in enumerate(checker.sequence(entry, "dependsOn", node_path) or ()):
            if isinstance(dependency, str):
                depends_on.append(dependency)
            else:
                dep_mark = entry["dependsOn"].mark_of(dep_index)
                checker.add(f"{node_path}.dependsOn[{dep_index}]", "must be a task id", dep_mark)
        if task is not None:
            nodes.append(DagNode(task, tuple(depends_on)))
            marks.append((node_path, entry.mark_of("dependsOn")))
    ids = {node.task.id for node in nodes}
    for node, (node_path, mark) in zip(nodes, marks, strict=True):
        for dependency in node.depends_on:
            if dependency not in ids:
                checker.add(f"{node_path}.dependsOn", f"unknown task id {dependency!r} in this Dag", mark)
    cycle = _find_cycle({node.task.id: node.depends_on for node in nodes})
    if cycle:
        checker.add(path, f"the Dag has a cycle: {' -> '.join(cycle)}", parent.mark_of(key))
    return tuple(nodes)


def _find_cycle(graph: dict[str, tuple[str, ...]]) -> list[str]:
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return []

    for node in graph:
        if node not in state and (found := visit(node)):
            return found
    return []


def _declared_properties(model: type[BaseModel]) -> frozenset[str]:
    names: set[str] = set()
    for name, info in model.model_fields.items():
        names.add(name)
        if info.alias:
            names.add(info.alias)
        alias = info.validation_alias
        if isinstance(alias, str):
            names.add(alias)
        elif alias is not None and hasattr(alias, "choices"):
            names.update(choice for choice in alias.choices if isinstance(choice, str))
    return frozenset(names)


def _apply_plugin_defaults(
    checker: _Checker, raw: MarkedDict, types: tuple[str, str], accepted: frozenset[str]
) -> MarkedDict:
    matching = [
        (default, values)
        for default, values in checker.defaults
        if any(t.startswith(default.type) for t in types)
    ]
    if not matching:
        return raw
    defaults = MarkedDict()
    forced = MarkedDict()
    for default, values in matching:
        target = forced if default.forced else defaults
        for key in values:
            if key in accepted:
                _merge_into(target, values, key)
    merged = _copy_marked(defaults)
    merged.mark = raw.mark
    for key in raw:
        _merge_into(merged, raw, key)
    for key in forced:
        _merge_into(merged, forced, key)
    return merged


def _merge_into(target: MarkedDict, source: MarkedDict, key: str) -> None:
    """target[key] = source[key], merging maps recursively (the source wins on conflicts)."""
    value = source[key]
    current = target.get(key)
    if isinstance(current, dict) and isinstance(value, dict):
        nested = _copy_marked(current)
        for sub_key in value:
            _merge_into(nested, _as_marked(value), sub_key)
        value = nested
    target[key] = value
    target.key_marks[key] = source.key_mark_of(key)
    target.value_marks[key] = source.mark_of(key)


def _as_marked(value: dict[str, Any]) -> MarkedDict:
    return value if isinstance(value, MarkedDict) else _copy_marked(value)


def _copy_marked(value: dict[str, Any]) -> MarkedDict:
    copy = MarkedDict(value)
    if isinstance(value, MarkedDict):
        copy.mark = value.mark
        copy.key_marks = dict(value.key_marks)
        copy.value_marks = dict(value.value_marks)
    return copy


def _report_pydantic_errors(checker: _Checker, data: MarkedDict, path: str, error: ValidationError) -> None:
    """Turn pydantic's errors into violations; a union's alternatives become one violation."""
    found: dict[str, tuple[list[str], Mark | None]] = {}
    for detail in error.errors():
        error_path, message, mark = _locate_pydantic_error(data, path, detail)
        messages, _ = found.setdefault(error_path, ([], mark))
        if message not in messages:
            messages.append(message)
    for error_path, (messages, mark) in found.items():
        checker.add(error_path, " or ".join(messages), mark)


def _locate_pydantic_error(data: MarkedDict, path: str, detail: Any) -> tuple[str, str, Mark | None]:
    current: Any = data
    mark: Mark | None = data.mark
    parts: list[str | int] = []
    is_unknown = detail["type"] == "extra_forbidden"
    for part in detail["loc"]:
        if isinstance(current, dict) and isinstance(part, str) and part in current:
            key_mark = current.key_mark_of(part) if is_unknown and isinstance(current, MarkedDict) else None
            mark = key_mark or mark_of(current, part) or mark
            current = current[part]
            parts.append(part)
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            mark = mark_of(current, part) or mark
            current = current[part]
            parts.append(part)
        else:
            if isinstance(current, dict) and isinstance(part, str) and not parts:
                parts.append(part)  # a missing property: reported at the task
            break
    error_path = path
    for part in parts:
        error_path = f"{error_path}[{part}]" if isinstance(part, int) else join_path(error_path, part)
    messages: dict[str, Callable[[Any], str]] = {
        "extra_forbidden": lambda _: "unknown property",
        "missing": lambda _: "missing required property",
    }
    message = messages.get(detail["type"], lambda d: str(d["msg"]))(detail)
    return error_path, message, mark


# ---------------------------------------------------------------- helpers


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__
