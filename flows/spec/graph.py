"""A flow's topology as Kestra's graph endpoint answers it: nodes, edges and clusters.

Each flowable task (Parallel, If, Switch, ForEach, ...) is a cluster with its own start and end
nodes; its branches run from its start to its end. Pure: built from the definition alone.
"""

from __future__ import annotations

from typing import Any

from flows.spec.model import FlowSpec, TaskSpec, _task_lists

_HIERARCHY = "io.kestra.core.models.hierarchies."
_PARALLEL = ("Parallel",)
_CHOICE = ("If", "Switch")
_DYNAMIC = ("ForEach", "EachSequential", "EachParallel", "LoopUntil")


def _relation(task: TaskSpec) -> str:
    name = task.type.rsplit(".", 1)[-1]
    if name in _PARALLEL or name == "EachParallel":
        return "PARALLEL"
    if name in _CHOICE:
        return "CHOICE"
    if name in _DYNAMIC:
        return "DYNAMIC"
    return "SEQUENTIAL"


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[dict[str, Any]] = []
        self.edges: list[dict[str, Any]] = []
        self.clusters: list[dict[str, Any]] = []

    def node(self, uid: str, kind: str, task: TaskSpec | None = None, relation: str | None = None) -> str:
        node: dict[str, Any] = {"uid": uid, "type": _HIERARCHY + kind}
        if task is not None:
            node["task"] = {"id": task.id, "type": task.type}
            node["relationType"] = relation
        self.nodes.append(node)
        return uid

    def edge(self, source: str, target: str, relation: str) -> None:
        self.edges.append({"source": source, "target": target, "relation": {"relationType": relation}})

    def sequence(self, tasks: tuple[TaskSpec, ...], prefix: str, start: str, end: str, relation: str) -> None:
        """tasks one after the other between `start` and `end` (each edge labelled `relation`)."""
        previous = start
        for task in tasks:
            first, last = self.task(task, prefix, relation)
            self.edge(previous, first, relation)
            previous = last
        self.edge(previous, end, relation)

    def task(self, task: TaskSpec, prefix: str, relation: str) -> tuple[str, str]:
        """Add a task (a node, or a cluster for a flowable); returns its entry and exit uids."""
        branches = [child for value in task.properties.values() for child in _task_lists(value)]
        uid = f"{prefix}.{task.id}" if prefix else task.id
        if not branches and not task.errors and not task.finally_:
            return (self.node(uid, "GraphTask", task, relation),) * 2
        start = self.node(f"{uid}.start", "GraphClusterRoot")
        end = self.node(f"{uid}.end", "GraphClusterEnd")
        first_node = len(self.nodes)
        inner = _relation(task)
        for branch in branches:
            if inner == "PARALLEL":
                for child in branch:
                    entry, exit_ = self.task(child, uid, inner)
                    self.edge(start, entry, inner)
                    self.edge(exit_, end, inner)
            else:
                self.sequence(branch, uid, start, end, inner)
        if task.errors:
            self.sequence(task.errors, uid, start, end, "ERROR")
        if task.finally_:
            self.sequence(task.finally_, uid, start, end, "FINALLY")
        self.clusters.append(
            {
                "cluster": {
                    "uid": f"cluster_{uid}",
                    "type": _HIERARCHY + "GraphCluster",
                    "task": {"id": task.id, "type": task.type},
                },
                "nodes": [start, end, *(node["uid"] for node in self.nodes[first_node:])],
                "parents": [f"cluster_{prefix}"] if prefix and prefix != "root" else [],
                "start": start,
                "end": end,
            }
        )
        return start, end


def flow_graph(spec: FlowSpec) -> dict[str, Any]:
    """`{"nodes", "edges", "clusters"}` of the flow: root start → tasks → root end, with the
    flow's errors and finally branches from the start."""
    graph = _Graph()
    start = graph.node("root.root", "GraphClusterRoot")
    end = graph.node("root.end", "GraphClusterEnd")
    graph.sequence(spec.tasks, "root", start, end, "SEQUENTIAL")
    if spec.errors:
        graph.sequence(spec.errors, "root", start, end, "ERROR")
    if spec.finally_:
        graph.sequence(spec.finally_, "root", start, end, "FINALLY")
    return {"nodes": graph.nodes, "edges": graph.edges, "clusters": graph.clusters}
