"""Large task outputs become files; outputs above the hard limit are refused."""

from __future__ import annotations

import json

import pytest

from flows.errors import BatonError
from flows.storage import Storage
from flows.storage.outputs import OutputTooLarge, externalize_outputs

PREFIX = "company/team/hello/executions/exec1/tasks/fetch/run1"


def test_small_outputs_stay_inline(storage: Storage) -> None:
    # given
    outputs = {"code": 200, "body": "ok", "headers": {"a": ["b"]}}
    # when
    result = externalize_outputs(storage, "main", PREFIX, outputs, inline_limit=100, hard_limit=1000)
    # then
    assert result == outputs
    assert storage.list("main", "") == []


def test_a_large_string_becomes_a_text_file(storage: Storage) -> None:
    # given
    body = "é" * 600  # 1 200 bytes in UTF-8, 1 202 as JSON
    # when
    result = externalize_outputs(
        storage, "main", PREFIX, {"code": 200, "body": body}, inline_limit=1000, hard_limit=10_000
    )
    # then
    assert result == {"code": 200, "body": f"kestra:///{PREFIX}/outputs/body.txt"}
    assert storage.read_bytes("main", result["body"]).decode() == body


def test_a_large_value_becomes_a_json_file(storage: Storage) -> None:
    # given
    rows = [{"id": index, "name": f"row {index}"} for index in range(100)]
    # when
    result = externalize_outputs(
        storage, "main", PREFIX, {"rows": rows}, inline_limit=500, hard_limit=100_000
    )
    # then
    assert result == {"rows": f"kestra:///{PREFIX}/outputs/rows.json"}
    assert json.loads(storage.read_bytes("main", result["rows"])) == rows


@pytest.mark.parametrize(("length", "is_inline"), [(8, True), (9, False)])
def test_the_inline_limit_counts_json_bytes(storage: Storage, length: int, is_inline: bool) -> None:
    # given: "xxxxxxxx" is 10 bytes of JSON with its quotes
    value = "x" * length
    # when
    result = externalize_outputs(storage, "main", PREFIX, {"value": value}, inline_limit=10, hard_limit=100)
    # then
    assert (result["value"] == value) is is_inline


def test_outputs_above_the_hard_limit_are_refused_and_nothing_is_stored(storage: Storage) -> None:
    # given: each value alone would be stored as a file, together they are too big
    outputs = {"first": "a" * 600, "second": "b" * 600}
    # when
    with pytest.raises(OutputTooLarge) as raised:
        externalize_outputs(storage, "main", PREFIX, outputs, inline_limit=100, hard_limit=1000)
    # then
    error = raised.value
    assert isinstance(error, BatonError)
    assert (error.size, error.limit, error.code, error.http_status) == (1204, 1000, "output_too_large", 413)
    assert "1204 bytes" in str(error) and "BATON_OUTPUT_HARD_LIMIT" in str(error)
    assert storage.list("main", "") == []


@pytest.mark.parametrize(
    ("name", "file_name"), [("../../other", ".._.._other"), ("a b/c", "a_b_c"), ("..", "_.."), ("", "_")]
)
def test_output_names_become_one_safe_file_name(storage: Storage, name: str, file_name: str) -> None:
    # when
    result = externalize_outputs(storage, "main", PREFIX, {name: "x" * 50}, inline_limit=10, hard_limit=100)
    # then
    assert result == {name: f"kestra:///{PREFIX}/outputs/{file_name}.txt"}
    assert storage.list("main", "") == [result[name]]
