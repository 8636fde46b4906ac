from __future__ import annotations

from datetime import timedelta
from textwrap import dedent

import pytest

from flows.errors import FlowValidationError, Violation
from flows.spec import DagNode, PluginDefault, RetrySpec, load_flow
from tests.spec.conftest import FakeRegistry

LOG = "io.kestra.plugin.core.log.Log"


def violations(source: str, registry: FakeRegistry) -> list[Violation]:
    with pytest.raises(FlowValidationError) as error:
        load_flow(dedent(source), registry)
    return error.value.violations


# ---------------------------------------------------------------- errors: path, line, column


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param(
            """\
            id: hello
            namespace: company.team
            tasks:
              - id: first
                type: io.kestra.plugin.core.log.Log
                message: hi
              - id: second
                type: io.kestra.x.Y
            """,
            [Violation("tasks[1].type", "unknown task type 'io.kestra.x.Y'", 8, 11)],
            id="unknown-type",
        ),
        pytest.param(
            """\
            id: hello
            namespace: company.team
            colour: blue
            tasks:
              - id: first
                type: io.kestra.plugin.core.log.Log
                message: hi
            """,
            [Violation("colour", "unknown property", 3, 1)],
            id="unknown-flow-property",
        ),
        pytest.param(
            """\
            id: hello
            namespace: company.team
            tasks:
              - id: first
                type: io.kestra.plugin.core.log.Log
                message: hi
                foo: bar
            """,
            [Violation("tasks[0].foo", "unknown property", 7, 5)],
            id="unknown-task-property",
        ),
        pytest.param(
            """\
            id: hello
            namespace: company.team
            tasks:
              - id: first
                type: io.kestra.plugin.core.log.Log
            """,
            [Violation("tasks[0].message", "missing required property", 4, 5)],
            id="missing-task-property",
        ),
        pytest.param(
            """\
            id: hello
            namespace: company.team
            tasks:
              - id: first
                type: io.kestra.plugin.core.log.Log
                message: hi
                level: LOUD
            """,
            [
                Violation(
                    "tasks[0].level", "Input should be 'TRACE', 'DEBUG', 'INFO', 'WARN' or 'ERROR'", 7, 12
                )
            ],
            id="bad-task-property-value",
        ),
        pytest.param(
            """\
            id: hello
            namespace: company.team
            tasks:
              - id: first
                type: io.kestra.plugin.core.log.Log
                message: {text: hi}
            """,
            [
                Violation(
                    "tasks[0].message",
                    "Input should be a valid string or Input should be a valid list",
                    6,
                    14,
                )
            ],
            id="union-property-value",
        ),
        pytest.param(
            """\
            id: hello
            namespace: company.team
            tasks:
              - id: first
                type: io.kestra.plugin.core.log.Log
                message: hi
                retry:
                  type: constant
                  interval: PT1S
                  maxAttempts: 0
            """,
            [Violation("tasks[0].retry.maxAttempts", "must be >= 1", 10, 20)],
            id="bad-retry-field",
        ),
        pytest.param(
            """\
            id: hello
            namespace: company.team
            tasks:
              - id: first
                type: io.kestra.plugin.core.log.Log
                message: hi
                retry:
                  type: constant
                  interval: 5 minutes
                  maxAttempts: 2
                  backoff: 3
            """,
            [
                Violation(
                    "tasks[0].retry.interval",
                    "invalid ISO-8601 duration '5 minutes': expected a value like 'PT30S', 'PT1H30M' or 'P1D'",
                    9,
                    17,
                ),
                Violation("tasks[0].retry.backoff", "unknown property", 11, 7),
            ],
            id="retry-unknown-and-bad-duration",
        ),
        pytest.param(
            """\
            id: hello
            namespace: company.team
            tasks:
              - id: first
                type: io.kestra.plugin.core.log.Log
                message: hi
              - id: first
                type: io.kestra.plugin.core.log.Log
                message: again
            """,
            [Violation("tasks[1].id", "duplicate task id 'first', already used by tasks[0]", 7, 9)],
            id="duplicate-task-id",
        ),
        pytest.param(
            """\
            id: _hello
            namespace: company.team
            tasks:
              - id: first
                type: io.kestra.plugin.core.log.Log
                message: hi
            """,
            [Violation("id", "must match ^[a-zA-Z0-9][a-zA-Z0-9._-]*, got '_hello'", 1, 5)],
            id="invalid-flow-id",
        ),
        pytest.param(
            """\
            id: hello
            namespace: company.team
            tasks:
              - id: my.task
                type: io.kestra.plugin.core.log.Log
                message: hi
            """,
            [Violation("tasks[0].id", "must match ^[a-zA-Z0-9][a-zA-Z0-9_-]*, got 'my.task'", 4, 9)],
            id="invalid-task-id",
        ),
        pytest.param(
            """\
            id: hello
            namespace: company.team
            tasks: []
            """,
            [Violation("tasks", "must not be empty", 3, 8)],
            id="empty-tasks",
        ),
        pytest.param(
            """\
            id: hello
            namespace: company.team
            """,
            [Violation("tasks", "must not be empty", 1, 1)],
            id="missing-tasks",
        ),
        pytest.param(
            """\
            namespace: company.team
            tasks:
              - type: io.kestra.plugin.core.log.Log
                message: hi
            """,
            [
                Violation("id", "missing required property", 1, 1),
                Violation("tasks[0].id", "missing required property", 3, 5),
            ],
            id="missing-ids",
        ),
        pytest.param(
            """\
            id: hello
            namespace: company.team
            tasks:
              - id: check
                type: io.kestra.plugin.core.flow.If
                condition: "{{ true }}"
                then:
                  - id: a
                    type: io.kestra.plugin.core.log.Log
                    message: a
                  - id: b
                    type: io.kestra.plugin.core.debug.Return
                  - id: c
                    type: io.kestra.plugin.core.log.Log
                    mesage: typo
            """,
            [
                Violation("tasks[0].then[2].message", "missing required property", 13, 9),
                Violation("tasks[0].then[2].mesage", "unknown property", 15, 9),
            ],
            id="nested-task-in-then",
        ),
        pytest.param(
            """\
            id: hello
            namespace: company.team
            tasks:
              - id: a
                type: io.kestra.plugin.core.log.Log
                message: a
                errors:
                  - id: b
                    type: io.kestra.plugin.core.log.Log
                    message: b
            """,
            [Violation("tasks[0].errors", "unknown property: only flowable tasks have 'errors'", 7, 5)],
            id="errors-on-runnable",
        ),
        pytest.param(
            """\
            id: hello
            namespace: company.team
            tasks:
              - id: dag
                type: io.kestra.plugin.core.flow.Dag
                tasks:
                  - task: {id: a, type: io.kestra.plugin.core.log.Log, message: a}
                    dependsOn: [b]
                  - task: {id: b, type: io.kestra.plugin.core.log.Log, message: b}
                    dependsOn: [a, c]
            """,
            [
                Violation("tasks[0].tasks", "the Dag has a cycle: a -> b -> a", 7, 7),
                Violation("tasks[0].tasks[1].dependsOn", "unknown task id 'c' in this Dag", 10, 20),
            ],
            id="dag-dependencies",
        ),
        pytest.param(
            """\
            id: hello
            namespace: company.team
            inputs:
              - id: name
                type: TEXT
              - name: name
                type: STRING
            tasks:
              - id: a
                type: io.kestra.plugin.core.log.Log
                message: a
            """,
            [Violation("inputs[0].type", "unknown input type 'TEXT'", 5, 11)],
            id="unknown-input-type",
        ),
        pytest.param(
            """\
            id: hello
            namespace: company.team
            inputs:
              - id: name
                type: STRING
              - name: name
                type: INT
            tasks:
              - id: a
                type: io.kestra.plugin.core.log.Log
                message: a
            """,
            [Violation("inputs[1].name", "duplicate input id 'name', already used by inputs[0]", 6, 11)],
            id="duplicate-input",
        ),
        pytest.param(
            """\
            id: hello
            namespace: company.team
            concurrency:
              limit: 0
              behavior: WAIT
            sla:
              - id: slow
                type: MAX_DURATION
                behavior: FAIL
            tasks:
              - id: a
                type: io.kestra.plugin.core.log.Log
                message: a
            """,
            [
                Violation("concurrency.limit", "must be >= 1", 4, 10),
                Violation("concurrency.behavior", "must be one of QUEUE, CANCEL, FAIL, got 'WAIT'", 5, 13),
                Violation("sla[0].duration", "missing required property for a MAX_DURATION SLA", 7, 5),
            ],
            id="sla-and-concurrency",
        ),
        pytest.param(
            """\
            id: hello
            namespace: company.team
            labels:
              team: null
            triggers:
              - type: io.kestra.plugin.core.trigger.Schedule
            tasks:
              - id: a
                type: io.kestra.plugin.core.log.Log
                message: a
            """,
            [
                Violation("labels.team", "label value must not be null", 4, 3),
                Violation("triggers[0].id", "missing required property", 6, 5),
                Violation("triggers[0].cron", "missing required property", 6, 5),
            ],
            id="labels-and-triggers",
        ),
    ],
)
def test_invalid_flow_lists_every_violation_with_its_position(
    source: str, expected: list[Violation], registry: FakeRegistry
) -> None:
    # given an invalid flow / when loaded / then every violation is reported with path, line and column
    assert violations(source, registry) == expected


def test_invalid_yaml_reports_the_syntax_error_line(registry: FakeRegistry) -> None:
    # given a document with an unclosed flow sequence on line 3
    source = "id: hello\nnamespace: company.team\ntasks: [\n  {id: a\n"

    # when loaded
    found = violations(source, registry)

    # then one violation points at the parser's problem mark
    assert [(v.path, v.line) for v in found] == [("", 5)]
    assert found[0].message.startswith("invalid YAML: ")


@pytest.mark.parametrize("source", ["", "- a\n- b\n", "just a string"])
def test_a_document_that_is_not_a_mapping_is_rejected(source: str, registry: FakeRegistry) -> None:
    assert [(v.path, v.line) for v in violations(source, registry)] == [("", 1)]
    assert violations(source, registry)[0].message.startswith("a flow must be a YAML mapping, got ")


def test_error_message_reads_path_message_and_line(registry: FakeRegistry) -> None:
    # given a flow with an unknown task type
    source = "id: hello\nnamespace: company.team\ntasks:\n  - id: a\n    type: io.kestra.x.Y\n"

    # when loaded / then the exception text names the path, the cause and the line
    with pytest.raises(FlowValidationError) as error:
        load_flow(source, registry)
    assert str(error.value) == "tasks[0].type: unknown task type 'io.kestra.x.Y' (line 5)"


# ---------------------------------------------------------------- a valid flow


FULL_FLOW = """\
id: hello
namespace: company.team
description: A flow
revision: 7
tenantId: main
deleted: false
labels:
  team: data
  critical: true
  tier: 1
variables:
  greeting: hi
  nested: {at: "2024-01-01T00:00:00Z"}
inputs:
  - id: user
    type: STRING
    defaults: world
    displayName: User
  - name: count
    type: INT
    required: false
    min: 1
tasks:
  - id: first
    type: io.kestra.core.tasks.log.Log
    message: "{{ vars.greeting }} {{ inputs.user }}"
    timeout: PT1M
    runIf: "{{ inputs.count > 1 }}"
    allowFailure: true
    logLevel: WARN
    logToFile: true
    workerGroup: {key: gpu}
    retry:
      type: exponential
      maxAttempt: 3
      interval: PT1S
      maxInterval: PT10S
      delayFactor: 2
      warningOnRetry: true
  - id: branch
    type: io.kestra.plugin.core.flow.Switch
    value: "{{ inputs.user }}"
    timeout: "{{ vars.timeout }}"
    cases:
      A:
        - id: in-a
          type: io.kestra.plugin.core.debug.Return
          format: a
    defaults:
      - id: other
        type: io.kestra.plugin.core.debug.Return
    errors:
      - id: on-error
        type: io.kestra.plugin.core.log.Log
        message: failed
    finally:
      - id: at-last
        type: io.kestra.plugin.core.log.Log
        message: done
errors:
  - id: flow-error
    type: io.kestra.plugin.core.log.Log
    message: flow failed
finally:
  - id: flow-finally
    type: io.kestra.plugin.core.log.Log
    message: flow done
outputs:
  - id: result
    type: STRING
    value: "{{ outputs.first }}"
retry:
  type: constant
  maxAttempts: 2
  interval: PT5S
  behavior: CREATE_NEW_EXECUTION
sla:
  - id: slow
    type: MAX_DURATION
    behavior: FAIL
    duration: PT0.5S
    labels: [{key: sla, value: missed}]
concurrency:
  limit: 2
  behavior: CANCEL
triggers:
  - id: daily
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 9 * * *"
"""


def test_valid_flow_loads_into_a_flow_spec(registry: FakeRegistry) -> None:
    # given a flow using most of the syntax / when loaded
    flow = load_flow(FULL_FLOW, registry)

    # then the flow-level fields are typed
    assert (flow.id, flow.namespace, flow.description, flow.revision) == (
        "hello",
        "company.team",
        "A flow",
        None,
    )
    assert flow.source == FULL_FLOW
    assert flow.labels == (("team", "data"), ("critical", "true"), ("tier", "1"))
    assert flow.variables == {"greeting": "hi", "nested": {"at": "2024-01-01T00:00:00Z"}}
    assert [(i.id, i.type, i.required, i.defaults, i.display_name, i.options) for i in flow.inputs] == [
        ("user", "STRING", True, "world", "User", {}),
        ("count", "INT", False, None, None, {"min": 1}),
    ]
    assert [(o.id, o.type, o.value) for o in flow.outputs] == [("result", "STRING", "{{ outputs.first }}")]
    assert flow.retry == RetrySpec(
        "constant", max_attempts=2, interval=timedelta(seconds=5), behavior="CREATE_NEW_EXECUTION"
    )
    assert [(s.id, s.type, s.behavior, s.duration, s.labels) for s in flow.sla] == [
        ("slow", "MAX_DURATION", "FAIL", timedelta(milliseconds=500), {"sla": "missed"})
    ]
    assert (flow.concurrency.limit, flow.concurrency.behavior) == (2, "CANCEL")
    assert flow.triggers == (
        {"id": "daily", "type": "io.kestra.plugin.core.trigger.Schedule", "cron": "0 9 * * *"},
    )
    assert [task.id for task in flow.errors] == ["flow-error"]
    assert [task.id for task in flow.finally_] == ["flow-finally"]
    assert [task.id for task in flow.all_tasks()] == [
        "first", "branch", "in-a", "other", "on-error", "at-last", "flow-error", "flow-finally",
    ]  # fmt: skip


def test_task_common_properties_are_typed(registry: FakeRegistry) -> None:
    # given the valid flow / when loaded
    first = load_flow(FULL_FLOW, registry).tasks[0]

    # then the alias resolves to the canonical type and common properties are typed
    assert (first.id, first.type, first.kind, first.path, first.line) == (
        "first",
        LOG,
        "runnable",
        "tasks[0]",
        24,
    )
    assert first.properties == {"message": "{{ vars.greeting }} {{ inputs.user }}"}
    assert first.timeout == timedelta(minutes=1)
    assert first.run_if == "{{ inputs.count > 1 }}"
    assert (first.allow_failure, first.allow_warning, first.disabled) == (True, False, False)
    assert (first.log_level, first.worker_group) == ("WARN", "gpu")
    assert first.retry == RetrySpec(
        "exponential",
        max_attempts=3,
        interval=timedelta(seconds=1),
        max_interval=timedelta(seconds=10),
        delay_factor=2.0,
        warning_on_retry=True,
    )


def test_flowable_task_properties_are_converted(registry: FakeRegistry) -> None:
    # given the valid flow / when loaded
    branch = load_flow(FULL_FLOW, registry).tasks[1]

    # then task maps and lists become TaskSpecs, expressions stay strings
    assert branch.kind == "flowable"
    assert branch.timeout == "{{ vars.timeout }}"
    assert branch.properties["value"] == "{{ inputs.user }}"
    assert {case: [t.path for t in tasks] for case, tasks in branch.properties["cases"].items()} == {
        "A": ["tasks[1].cases.A[0]"]
    }
    assert [(t.id, t.properties) for t in branch.properties["defaults"]] == [("other", {})]
    assert [t.path for t in branch.errors] == ["tasks[1].errors[0]"]
    assert [t.path for t in branch.finally_] == ["tasks[1].finally[0]"]


def test_dag_tasks_become_dag_nodes(registry: FakeRegistry) -> None:
    # given a Dag
    source = """\
    id: hello
    namespace: company.team
    tasks:
      - id: dag
        type: io.kestra.plugin.core.flow.Dag
        tasks:
          - task: {id: a, type: io.kestra.plugin.core.log.Log, message: a}
          - task: {id: b, type: io.kestra.plugin.core.log.Log, message: b}
            dependsOn: [a]
    """

    # when loaded
    nodes = load_flow(dedent(source), registry).tasks[0].properties["tasks"]

    # then each entry is a DagNode with its dependencies
    assert [(node.task.id, node.task.path, node.depends_on) for node in nodes] == [
        ("a", "tasks[0].tasks[0].task", ()),
        ("b", "tasks[0].tasks[1].task", ("a",)),
    ]
    assert all(isinstance(node, DagNode) for node in nodes)


def test_properties_keep_values_as_written(registry: FakeRegistry) -> None:
    # given a property that pydantic would coerce (a list where a string or a list is accepted)
    source = "id: f\nnamespace: n\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: [x, '{{ y }}']\n"

    # when loaded / then the raw value is kept, as plain Python containers
    properties = load_flow(source, registry).tasks[0].properties
    assert properties == {"message": ["x", "{{ y }}"]}
    assert type(properties["message"]) is list


# ---------------------------------------------------------------- labels


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (
            "{a: x, b: true, c: false, d: 3, e: 1.5}",
            (("a", "x"), ("b", "true"), ("c", "false"), ("d", "3"), ("e", "1.5")),
        ),
        ("[{key: a, value: x}, {key: b, value: true}]", (("a", "x"), ("b", "true"))),
        ("{}", ()),
    ],
)
def test_labels_accept_a_map_or_a_list(
    labels: str, expected: tuple[tuple[str, str], ...], registry: FakeRegistry
) -> None:
    # given labels written as a map or as key/value pairs
    source = f"id: f\nnamespace: n\nlabels: {labels}\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.debug.Return\n"

    # when loaded / then they are ordered string pairs
    assert load_flow(source, registry).labels == expected


# ---------------------------------------------------------------- pluginDefaults


def defaults_flow(defaults: str, task: str = "") -> str:
    return (
        "id: f\nnamespace: n\npluginDefaults:\n"
        + dedent(defaults)
        + "tasks:\n  - id: s\n    type: io.kestra.plugin.scripts.python.Script\n"
        + task
    )


def test_plugin_defaults_fill_missing_properties_by_prefix(registry: FakeRegistry) -> None:
    # given a default for a whole family of types, including a property Script does not have
    source = defaults_flow(
        """\
        - type: io.kestra.plugin.scripts
          values:
            containerImage: python:3.11
            script: print(1)
            unrelated: ignored
            retry: {type: constant, interval: PT1S, maxAttempts: 2}
        """,
        "    script: print(2)\n",
    )

    # when loaded
    flow = load_flow(source, registry)

    # then missing properties are filled, the task's own values win, and unknown ones are ignored
    task = flow.tasks[0]
    assert task.properties == {"containerImage": "python:3.11", "script": "print(2)"}
    assert task.retry == RetrySpec("constant", max_attempts=2, interval=timedelta(seconds=1))
    assert flow.plugin_defaults == (
        PluginDefault(
            "io.kestra.plugin.scripts",
            {
                "containerImage": "python:3.11",
                "script": "print(1)",
                "unrelated": "ignored",
                "retry": {"type": "constant", "interval": "PT1S", "maxAttempts": 2},
            },
        ),
    )


def test_forced_plugin_defaults_overwrite_task_values(registry: FakeRegistry) -> None:
    # given a forced default and a normal one for the same property
    source = defaults_flow(
        """\
        - type: io.kestra.plugin.scripts.python.Script
          forced: true
          values: {containerImage: forced:1}
        - type: io.kestra.plugin.scripts.python
          values: {containerImage: normal:1, warningOnStdErr: false}
        """,
        "    script: x\n    containerImage: mine:1\n",
    )

    # when loaded / then the forced value wins over the task's own
    assert load_flow(source, registry).tasks[0].properties == {
        "warningOnStdErr": False,
        "script": "x",
        "containerImage": "forced:1",
    }


def test_plugin_defaults_match_the_type_as_written(registry: FakeRegistry) -> None:
    # given a default keyed by a legacy alias
    source = (
        "id: f\nnamespace: n\ntaskDefaults:\n  - type: io.kestra.core.tasks\n    values: {message: from default}\n"
        "tasks:\n  - id: a\n    type: io.kestra.core.tasks.log.Log\n  - id: b\n    type: io.kestra.plugin.core.log.Log\n"
        "    message: own\n"
    )

    # when loaded / then it applies to the task written with the alias only
    flow = load_flow(source, registry)
    assert [task.properties for task in flow.tasks] == [{"message": "from default"}, {"message": "own"}]


def test_plugin_default_values_are_validated_at_their_line(registry: FakeRegistry) -> None:
    # given a default with a wrongly typed value for a real property
    source = defaults_flow(
        """\
        - type: io.kestra.plugin.scripts.python.Script
          values:
            beforeCommands: not-a-list
        """,
        "    script: x\n",
    )

    # when loaded / then the violation is on the task's path, at the default's line
    assert violations(source, registry) == [
        Violation("tasks[0].beforeCommands", "Input should be a valid list", 6, 21)
    ]
