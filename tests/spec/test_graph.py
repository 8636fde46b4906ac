"""The topology graph of a flow (the API's /graph), built from the definition alone."""

from __future__ import annotations

from flows.spec import load_flow
from flows.spec.graph import flow_graph
from plugins.registry import default_registry

FLOW = """
id: shapes
namespace: company.team
tasks:
  - {id: first, type: io.kestra.plugin.core.log.Log, message: a}
  - id: both
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - {id: left, type: io.kestra.plugin.core.log.Log, message: l}
      - {id: right, type: io.kestra.plugin.core.log.Log, message: r}
  - id: choose
    type: io.kestra.plugin.core.flow.If
    condition: "{{ true }}"
    then:
      - {id: yes, type: io.kestra.plugin.core.log.Log, message: y}
    else:
      - {id: no, type: io.kestra.plugin.core.log.Log, message: n}
errors:
  - {id: alert, type: io.kestra.plugin.core.log.Log, message: e}
"""


def _edges(graph: dict) -> set[tuple[str, str, str]]:
    return {(edge["source"], edge["target"], edge["relation"]["relationType"]) for edge in graph["edges"]}


def test_tasks_flowables_and_errors_become_nodes_clusters_and_edges() -> None:
    # when
    graph = flow_graph(load_flow(FLOW, default_registry()))
    # then
    edges = _edges(graph)
    assert ("root.root", "root.first", "SEQUENTIAL") in edges
    assert ("root.first", "root.both.start", "SEQUENTIAL") in edges
    assert {
        ("root.both.start", "root.both.left", "PARALLEL"),
        ("root.both.right", "root.both.end", "PARALLEL"),
    } <= edges
    assert ("root.both.end", "root.choose.start", "SEQUENTIAL") in edges
    assert {
        ("root.choose.start", "root.choose.yes", "CHOICE"),
        ("root.choose.no", "root.choose.end", "CHOICE"),
    } <= edges
    assert ("root.choose.end", "root.end", "SEQUENTIAL") in edges
    assert {("root.root", "root.alert", "ERROR"), ("root.alert", "root.end", "ERROR")} <= edges
    clusters = {cluster["cluster"]["uid"]: cluster for cluster in graph["clusters"]}
    assert set(clusters) == {"cluster_root.both", "cluster_root.choose"}
    assert set(clusters["cluster_root.both"]["nodes"]) == {
        "root.both.start",
        "root.both.end",
        "root.both.left",
        "root.both.right",
    }
    uids = [node["uid"] for node in graph["nodes"]]
    assert len(uids) == len(set(uids))
    assert {edge["source"] for edge in graph["edges"]} | {edge["target"] for edge in graph["edges"]} <= set(
        uids
    )
