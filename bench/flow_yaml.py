"""The benchmark's flows: N no-op Return tasks, in sequence or as the branches of one Parallel;
one Return task for the throughput and latency scenarios."""

from __future__ import annotations

NAMESPACE = "bench"
SEQUENTIAL_ID = "sequential"
PARALLEL_ID = "parallel"


def _return_task(index: int, indent: str) -> str:
    return (
        f"{indent}- id: t{index:03d}\n"
        f"{indent}  type: io.kestra.plugin.core.debug.Return\n"
        f'{indent}  format: "ok"\n'
    )


def sequential_flow(size: int, flow_id: str = SEQUENTIAL_ID) -> str:
    """`size` Return tasks, one after the other."""
    tasks = "".join(_return_task(index, "  ") for index in range(size))
    return f"id: {flow_id}\nnamespace: {NAMESPACE}\n\ntasks:\n{tasks}"


def parallel_flow(size: int, flow_id: str = PARALLEL_ID) -> str:
    """One Parallel task (no concurrency limit) with `size` Return branches."""
    tasks = "".join(_return_task(index, "      ") for index in range(size))
    return (
        f"id: {flow_id}\nnamespace: {NAMESPACE}\n\ntasks:\n"
        "  - id: fanout\n"
        "    type: io.kestra.plugin.core.flow.Parallel\n"
        "    tasks:\n"
        f"{tasks}"
    )


SINGLE_ID = "single"


def single_flow(flow_id: str = SINGLE_ID) -> str:
    """One Return task: the unit of the throughput and latency scenarios."""
    return f"id: {flow_id}\nnamespace: {NAMESPACE}\n\ntasks:\n{_return_task(0, '  ')}"
