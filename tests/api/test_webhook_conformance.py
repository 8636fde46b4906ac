"""Kestra's webhook test cases (`ExecutionControllerTest.webhook*`), which the conformance runner cannot
play from one `runflow`: the flows and the expected answers are read from ../shared/conformance at
test time and sent to Baton's webhook endpoint (in tenant `main`: Kestra's paths have no tenant)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from rest_framework.test import APIClient

from tests.fixtures.api import Api
from tests.fixtures.modes import ROOT

pytestmark = pytest.mark.usefixtures("worker", "transactional_db")

KESTRA = ROOT.parent / "shared" / "conformance" / "kestra"
FILES = ("webhook.yaml", "webhook-with-condition.yaml")


def cases() -> list[Any]:
    entries = yaml.safe_load((KESTRA / "expected.yaml").read_text())
    entries = entries["flows"] if isinstance(entries, dict) else entries
    return [
        pytest.param(entry["file"], case, id=case["test"])
        for entry in entries
        if entry.get("file") in FILES
        for case in entry.get("cases", [])
    ]


def matches(actual: Any, expected: Any) -> bool:
    """The conformance matchers used by these cases: maps are subsets, and the `contains`,
    `containsInAnyOrder` and `notNull` forms."""
    if isinstance(expected, dict):
        if set(expected) == {"containsInAnyOrder"}:
            return isinstance(actual, list) and sorted(actual) == sorted(expected["containsInAnyOrder"])
        if set(expected) == {"contains"}:
            return isinstance(actual, str) and expected["contains"] in actual
        if set(expected) == {"notNull"}:
            return (actual is not None) == expected["notNull"]
        return isinstance(actual, dict) and all(
            key in actual and matches(actual[key], value) for key, value in expected.items()
        )
    return actual == expected


@pytest.mark.parametrize(("flow_file", "case"), cases())
def test_kestra_webhook_case(api: Api, flow_file: str, case: dict[str, Any]) -> None:
    # given
    api.post_yaml("flows", (KESTRA / "flows" / flow_file).read_text())
    anonymous = APIClient()
    for request in case["requests"]:
        call = request["request"]
        path = call["path"].replace("/api/v1/", "/api/v1/main/", 1)
        method = getattr(anonymous, call["method"].lower())
        # when
        if "json" in call:
            response = method(path, call["json"], format="json")
        elif "body" in call:
            response = method(path, call["body"], content_type="text/plain")
        else:
            response = method(path)
        # then
        expect = request["expect"]
        assert response.status_code == expect["status"], (call, response.content)
        if "message" in expect:
            assert matches(response.json()["message"], expect["message"])
        if expect.get("body", "absent") is None:
            assert response.content == b""
        execution = expect.get("execution")
        if execution is None:
            continue
        answer = response.json()
        for key, wanted in execution.items():
            if key == "labelsInOrder":
                own = [label for label in answer["labels"] if not label["key"].startswith("system.")]
                assert own == wanted
            else:
                assert matches(answer[key], wanted), (key, answer[key], wanted)
