"""Polling triggers in the loader: the HTTP trigger's properties checked with their path and line, and
the interval and timeouts read from them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from flows.errors import FlowValidationError, Violation
from flows.spec import load_flow
from flows.spec.polling import HttpPolling
from tests.spec.conftest import FakeRegistry

FLOW = """\
id: watch
namespace: company.team
tasks:
  - {id: a, type: io.kestra.plugin.core.log.Log, message: a}
triggers:
  - id: http
    type: io.kestra.plugin.core.http.Trigger
"""


def violations(trigger_lines: str, registry: FakeRegistry) -> list[Violation]:
    with pytest.raises(FlowValidationError) as error:
        load_flow(FLOW + trigger_lines, registry)
    return error.value.violations


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        pytest.param(
            "    interval: PT1M\n",
            [Violation("triggers[0].uri", "missing required property", 6, 5)],
            id="missing-uri",
        ),
        pytest.param(
            "    uri: ftp://example.com/file\n",
            [
                Violation(
                    "triggers[0].uri", "must be an http or https URL, got 'ftp://example.com/file'", 8, 10
                )
            ],
            id="not-http",
        ),
        pytest.param(
            "    uri: http://example.com\n    interval: 60\n",
            [
                Violation(
                    "triggers[0].interval",
                    "expected an ISO-8601 duration like 'PT30S', got 60",
                    9,
                    15,
                )
            ],
            id="interval-not-a-duration",
        ),
        pytest.param(
            "    uri: http://example.com\n    interval: PT0S\n",
            [Violation("triggers[0].interval", "must be a duration greater than zero", 9, 15)],
            id="interval-zero",
        ),
        pytest.param(
            "    uri: http://example.com\n    interval: -PT5S\n",
            [Violation("triggers[0].interval", "duration must not be negative, got '-PT5S'", 9, 15)],
            id="interval-negative",
        ),
        pytest.param(
            "    uri: http://example.com\n    method: FETCH\n",
            [
                Violation(
                    "triggers[0].method",
                    "must be one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS, TRACE, got 'FETCH'",
                    9,
                    13,
                )
            ],
            id="bad-method",
        ),
        pytest.param(
            "    uri: http://example.com\n    responseConditon: '{{ true }}'\n",
            [Violation("triggers[0].responseConditon", "unknown property", 9, 5)],
            id="typo",
        ),
        pytest.param(
            "    uri: http://example.com\n    headers: [a, b]\n",
            [Violation("triggers[0].headers", "must be a mapping, got a list", 9, 14)],
            id="headers-not-a-mapping",
        ),
        pytest.param(
            "    uri: http://example.com\n"
            "    options:\n"
            "      readTimeout: soon\n"
            "      proxyAddress: proxy.local\n"
            "      auth: {type: BASIC, username: me}\n",
            [
                Violation(
                    "triggers[0].options.readTimeout",
                    "invalid ISO-8601 duration 'soon': expected a value like 'PT30S', 'PT1H30M' or 'P1D'",
                    10,
                    20,
                ),
                Violation("triggers[0].options.proxyAddress", "proxies are not supported yet", 11, 7),
                Violation("triggers[0].options.auth.password", "missing required property", 12, 13),
            ],
            id="options",
        ),
        pytest.param(
            "    uri: http://example.com\n    conditions:\n      - expression: '{{ true }}'\n",
            [Violation("triggers[0].conditions[0].type", "missing required property", 10, 9)],
            id="condition-without-type",
        ),
    ],
)
def test_an_invalid_http_trigger_is_refused_with_the_path_and_line(
    lines: str, expected: list[Violation], registry: FakeRegistry
) -> None:
    # given a flow with this HTTP trigger / when loaded / then
    assert violations(lines, registry) == expected


def test_a_valid_http_trigger_keeps_its_properties(registry: FakeRegistry) -> None:
    # given
    source = FLOW.replace("core.http.Trigger", "fs.http.Trigger") + (
        "    uri: \"https://example.com/status?token={{ secret('TOKEN') }}\"\n"
        "    method: POST\n"
        "    body: '{\"ping\": true}'\n"
        "    contentType: application/json\n"
        "    headers: {X-Api-Key: \"{{ secret('KEY') }}\"}\n"
        '    responseCondition: "{{ response.statusCode == 200 }}"\n'
        "    interval: PT30S\n"
        "    encryptBody: true\n"
        "    options: {connectTimeout: PT2S, readTimeout: PT5S, followRedirects: false}\n"
        "    inputs: {status: '{{ trigger.body }}'}\n"
        "    labels: {origin: http}\n"
        "    stopAfter: [SUCCESS]\n"
    )
    # when
    (trigger,) = load_flow(source, registry).triggers
    # then
    assert trigger["type"] == "io.kestra.plugin.fs.http.Trigger"
    assert trigger["options"] == {"connectTimeout": "PT2S", "readTimeout": "PT5S", "followRedirects": False}
    assert trigger["inputs"] == {"status": "{{ trigger.body }}"}


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        pytest.param(
            {"uri": "http://x"},
            HttpPolling(interval=timedelta(seconds=60)),
            id="defaults",
        ),
        pytest.param(
            {
                "uri": "http://x",
                "interval": "PT5M",
                "options": {
                    "connectTimeout": "PT1S",
                    "readTimeout": "PT20S",
                    "readIdleTimeout": "PT1M",
                    "maxContentLength": 1024,
                    "followRedirects": False,
                },
            },
            HttpPolling(
                interval=timedelta(minutes=5),
                connect_timeout=timedelta(seconds=1),
                read_timeout=timedelta(seconds=20),
                read_idle_timeout=timedelta(seconds=20),  # one read never waits past the whole read
                max_content_length=1024,
                follow_redirects=False,
            ),
            id="options",
        ),
    ],
)
def test_the_interval_and_timeouts_come_from_the_properties(
    trigger: dict[str, object], expected: HttpPolling
) -> None:
    # when
    polling = HttpPolling.of(trigger)
    # then: the lease covers the longest call plus a margin
    assert polling == expected
    assert polling.lease == polling.connect_timeout + 2 * polling.read_timeout + timedelta(seconds=30)
