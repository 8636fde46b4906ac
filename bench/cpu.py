"""Where the CPU went during a measurement: per-process CPU time from /proc, grouped by role.

On a 2-core machine the clients, the workers, PostgreSQL and Redis all share the same CPUs, so a
throughput number is only readable next to who used them. `snapshot()` before and after, then
`by_role(before, after, client_pids)`: CPU seconds of each role in between (processes that exited
in between are missed; the drivers keep their clients alive until the second snapshot), and `busy`,
the whole machine's from /proc/stat (kernel threads are in `busy` only: their per-thread times
in /proc do not add up).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable

_TICK = os.sysconf("SC_CLK_TCK")


def _read(pid: str) -> tuple[str, float, str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode(errors="replace")
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[11], fields[12]: utime, stime (the 14th and 15th fields of proc(5)), in clock ticks
    return comm, (int(fields[11]) + int(fields[12])) / _TICK, cmdline


def _busy() -> float:
    """Seconds of CPU time the whole machine spent outside idle and iowait, all CPUs together."""
    with open("/proc/stat") as handle:
        values = [int(value) for value in handle.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / _TICK


Snapshot = tuple[dict[int, tuple[str, float, str]], float]


def snapshot() -> Snapshot:
    processes = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            read = _read(name)
            if read is not None:
                processes[int(name)] = read
    return processes, _busy()


def role(pid: int, comm: str, cmdline: str, client_pids: Iterable[int], label: str = "clients") -> str:
    if pid in client_pids:
        return label
    if comm.startswith("postgres") or cmdline.startswith("postgres"):
        return "postgres"
    if comm.startswith("redis"):
        return "redis"
    if "celery" in cmdline and "bench_worker" in cmdline:
        return "baton workers"
    if "celery" in cmdline and "bare_app" in cmdline:
        return "bare workers"
    if "py-spy" in comm or "py-spy" in cmdline:
        return "profiler"
    if not cmdline:
        return ""  # kernel threads (kworker & co): their /proc times do not add up with /proc/stat
    return "other"


def by_role(
    before: Snapshot, after: Snapshot, client_pids: Iterable[int] = (), label: str = "clients"
) -> dict[str, float]:
    """CPU seconds per role between two snapshots (`client_pids` are `label`), and `busy` for the
    whole machine."""
    clients = set(client_pids)
    used: Counter[str] = Counter()
    start, _ = before
    for pid, (comm, seconds, cmdline) in after[0].items():
        previous = start.get(pid)
        spent = seconds - (previous[1] if previous is not None and previous[0] == comm else 0.0)
        name = role(pid, comm, cmdline, clients, label)
        if spent > 0 and name:
            used[name] += spent
    result = {name: round(value, 2) for name, value in used.most_common()}
    result["busy"] = round(after[1] - before[1], 2)
    return result
