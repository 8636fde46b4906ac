"""ForEachItem: split a file into batches, one subflow execution per batch, outputs and restart."""

from __future__ import annotations

import io
import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from plugins.core.foreach_item import parse_size, split_stream
from tests.fixtures.executions import Finished, finished

RunFlow = Callable[..., Finished]
StartFlow = Callable[..., str]

# The child echoes its batch; a batch containing `bad` fails (twice) or fails once when a
# marker file path is given (the marker is written by the failing run).
CHILD = """
id: child
namespace: test.fei
inputs:
  - {id: data, type: FILE}
  - {id: number, type: INT}
  - {id: marker, type: STRING, required: false}
tasks:
  - id: check
    type: io.kestra.plugin.core.flow.If
    condition: "{{ 'bad' in read(inputs.data) }}"
    then:
      - id: once
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - if [ -n "{{ inputs.marker ?? '' }}" ] && [ -f "{{ inputs.marker ?? '' }}" ]; then exit 0; fi
          - if [ -n "{{ inputs.marker ?? '' }}" ]; then touch "{{ inputs.marker ?? '' }}"; fi
          - exit 1
  - id: pause
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["sleep {{ inputs.number > 0 and 0.2 or 0 }}"]
outputs:
  - {id: content, type: STRING, value: "{{ read(inputs.data) }}"}
  - {id: number, type: INT, value: "{{ inputs.number }}"}
"""


def parent(batch: str, *, extra: str = "", inputs: str = "") -> str:
    return f"""
        id: parent
        namespace: test.fei
        inputs:
          - {{id: data, type: FILE}}
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEachItem
            items: "{{{{ inputs.data }}}}"
            batch: {batch}
            namespace: test.fei
            flowId: child
            inputs:
              data: "{{{{ taskrun.items }}}}"
              number: "{{{{ taskrun.iteration }}}}"{inputs}{extra}
    """


@pytest.fixture
def child_flow(transactional_db: None) -> None:
    from flows import services

    services.ensure_tenant("main")
    services.save_flow_revision("main", CHILD)


def lines_file(tmp_path: Path, lines: list[str]) -> str:
    path = tmp_path / "items.txt"
    path.write_text("".join(f"{line}\n" for line in lines))
    return str(path)


def read_uri(uri: str) -> str:
    from flows.storage import storage_for_uri

    return storage_for_uri("main", uri).read_bytes("main", uri).decode()


def children(execution_id: str) -> list[Any]:
    from flows.models import Execution

    return list(Execution.objects.filter(parent_id=execution_id))


def test_split_by_rows_runs_one_child_per_batch_and_merges_outputs(
    run_flow: RunFlow, child_flow: None, tmp_path: Path
) -> None:
    # given
    data = lines_file(tmp_path, [f"row{index}" for index in range(10)])
    # when
    done = run_flow(parent("{rows: 3}"), inputs={"data": data}, timeout=90)
    # then
    assert done.state == "SUCCESS"
    each = done.run("each")
    assert each["outputs"]["numberOfBatches"] == 4
    assert each["outputs"]["iterations"] == {"SUCCESS": 4}
    assert done.run("each_split")["state"]["current"] == "SUCCESS"
    assert done.run("each_merge")["state"]["current"] == "SUCCESS"
    batches = sorted(done.runs("each_items"), key=lambda run: run["iteration"])
    assert [(run["value"], run["state"]["current"]) for run in batches] == [
        ("1", "SUCCESS"),
        ("2", "SUCCESS"),
        ("3", "SUCCESS"),
        ("4", "SUCCESS"),
    ]
    merged = [json.loads(line) for line in read_uri(each["outputs"]["subflowOutputs"]).splitlines()]
    assert merged == [
        {"content": "row0\nrow1\nrow2\n", "number": 1},
        {"content": "row3\nrow4\nrow5\n", "number": 2},
        {"content": "row6\nrow7\nrow8\n", "number": 3},
        {"content": "row9\n", "number": 4},
    ]
    files = sorted((child.inputs["number"], child.inputs["data"]) for child in children(done.data["id"]))
    assert [read_uri(uri) for _, uri in files] == [item["content"] for item in merged]
    assert all(uri.startswith("kestra:///test/fei/parent/executions/") for _, uri in files)


@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        ("{partitions: 3}", ["a\nd\ng\n", "b\ne\n", "c\nf\n"]),
        ("{bytes: 6B}", ["a\nb\nc\n", "d\ne\nf\n", "g\n"]),
    ],
)
def test_split_by_partitions_or_bytes(
    run_flow: RunFlow, child_flow: None, tmp_path: Path, batch: str, expected: list[str]
) -> None:
    # given
    data = lines_file(tmp_path, list("abcdefg"))
    # when
    done = run_flow(parent(batch), inputs={"data": data}, timeout=90)
    # then
    assert done.state == "SUCCESS"
    assert done.run("each")["outputs"]["numberOfBatches"] == len(expected)
    merged = read_uri(done.run("each")["outputs"]["subflowOutputs"]).splitlines()
    assert [json.loads(line)["content"] for line in merged] == expected


@pytest.mark.parametrize(
    ("transmit", "state", "batch_states"), [(True, "FAILED", "FAILED"), (False, "SUCCESS", "SUCCESS")]
)
def test_failed_batch_with_transmit_failed(
    run_flow: RunFlow, child_flow: None, tmp_path: Path, transmit: bool, state: str, batch_states: str
) -> None:
    # given
    data = lines_file(tmp_path, ["ok1", "bad", "ok2"])
    extra = f"\n            transmitFailed: {str(transmit).lower()}"
    # when
    done = run_flow(parent("{rows: 1}", extra=extra), inputs={"data": data}, timeout=90)
    # then
    assert done.state == state
    each = done.run("each")
    assert each["outputs"]["iterations"] == {"FAILED": 1, "SUCCESS": 2}
    batches = {run["value"]: run["state"]["current"] for run in done.runs("each_items")}
    assert batches == {"1": "SUCCESS", "2": batch_states, "3": "SUCCESS"}
    assert sorted(child.state for child in children(done.data["id"])) == ["FAILED", "SUCCESS", "SUCCESS"]
    assert len(done.runs("each_merge")) == (0 if transmit else 1)


def test_wait_false_ends_without_waiting_for_children(
    run_flow: RunFlow, child_flow: None, tmp_path: Path
) -> None:
    # given
    data = lines_file(tmp_path, ["a", "b"])
    # when
    done = run_flow(parent("{rows: 1}", extra="\n            wait: false"), inputs={"data": data})
    # then
    assert done.state == "SUCCESS"
    assert done.run("each")["outputs"]["iterations"] == {"CREATED": 2}
    assert done.runs("each_merge") == []
    ids = {child.id for child in children(done.data["id"])}
    assert len(ids) == 2
    assert all(finished(child_id, 60).state == "SUCCESS" for child_id in ids)


def test_concurrency_limit_keeps_at_most_that_many_children_unfinished(
    run_flow: RunFlow, child_flow: None, tmp_path: Path
) -> None:
    # given
    from flows.services.variables import parse_iso

    data = lines_file(tmp_path, list("abcde"))
    # when
    done = run_flow(
        parent("{rows: 1}", extra="\n            concurrencyLimit: 2"), inputs={"data": data}, timeout=90
    )
    # then
    assert done.state == "SUCCESS"
    spans = []
    for child in children(done.data["id"]):
        dates = [parse_iso(item["date"]) for item in child.histories]
        spans.append((dates[0], dates[-1]))
    assert len(spans) == 5
    peak = max(sum(1 for start, end in spans if start <= moment < end) for moment, _ in spans)
    assert peak == 2


def test_restart_reruns_only_the_failed_batch(run_flow: RunFlow, child_flow: None, tmp_path: Path) -> None:
    # given: batch 2 fails the first time only
    from flows.services.control import restart_execution

    data = lines_file(tmp_path, ["ok1", "bad", "ok2"])
    marker = tmp_path / "marker"
    done = run_flow(
        parent("{rows: 1}", inputs=f"\n              marker: {marker}"), inputs={"data": data}, timeout=90
    )
    assert done.state == "FAILED"
    first_children = {child.id: child.inputs["number"] for child in children(done.data["id"])}
    # when
    restart_execution(done.data["id"])
    again = finished(done.data["id"], 90)
    # then
    assert again.state == "SUCCESS"
    after = {child.id: child.inputs["number"] for child in children(done.data["id"])}
    new = {child_id: number for child_id, number in after.items() if child_id not in first_children}
    assert sorted(new.values()) == [2]
    assert again.run("each")["outputs"]["iterations"] == {"SUCCESS": 3}
    merged = read_uri(again.run("each")["outputs"]["subflowOutputs"]).splitlines()
    assert [json.loads(line)["content"] for line in merged] == ["ok1\n", "bad\n", "ok2\n"]


# ---------------------------------------------------------------------------------------------- split


def test_split_of_a_million_rows_streams(tmp_path: Path) -> None:
    # given: ~ 14 MB of rows
    source_path = tmp_path / "big.txt"
    with open(source_path, "wb") as out:
        for start in range(0, 1_000_000, 10_000):
            out.write(b"".join(b"row-%07d\n" % index for index in range(start, start + 10_000)))
    # when
    tracemalloc.start()
    with open(source_path, "rb") as source:
        paths = split_stream(source, tmp_path / "out", rows=100_000)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # then
    assert peak < 5 * 1024 * 1024
    assert len(paths) == 10
    assert paths[3].read_bytes().splitlines()[0] == b"row-0300000"
    assert [path.stat().st_size for path in paths] == [1_200_000] * 10


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"rows": 2}, [b"a;b;", b"c;"]),
        ({"partitions": 2}, [b"a;c;", b"b;"]),
        ({"partitions": 5}, [b"a;", b"b;", b"c;"]),
        ({"max_bytes": 3}, [b"a;", b"b;", b"c;"]),
        ({"max_bytes": 4}, [b"a;b;", b"c;"]),
    ],
)
def test_split_with_a_custom_separator(
    tmp_path: Path, options: dict[str, int], expected: list[bytes]
) -> None:
    paths = split_stream(io.BytesIO(b"a;b;c"), tmp_path, separator=b";", **options)
    assert [path.read_bytes() for path in paths] == expected


def test_sizes() -> None:
    assert [parse_size(value) for value in ("10MB", "1kb", "512", 7)] == [10 * 1024 * 1024, 1024, 512, 7]


@pytest.mark.parametrize("order", ["before", "after"])
def test_a_task_id_taken_by_a_hidden_task_is_rejected(order: str) -> None:
    from flows.errors import FlowValidationError
    from flows.spec import load_flow
    from plugins.registry import default_registry

    clash = "  - {id: each_split, type: io.kestra.plugin.core.log.Log, message: hi}\n"
    each = (
        "  - {id: each, type: io.kestra.plugin.core.flow.ForEachItem, items: 'kestra:///a/b',"
        " namespace: test.fei, flowId: child}\n"
    )
    tasks = clash + each if order == "before" else each + clash
    with pytest.raises(FlowValidationError, match="each_split"):
        load_flow(f"id: clash\nnamespace: test.fei\ntasks:\n{tasks}", default_registry())
