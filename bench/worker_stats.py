"""Reading what the benchmark's Baton workers recorded (see bench_worker.py), and percentiles."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def read_stats(directory: Path) -> dict[str, Any]:
    """The sum of every worker process's statistics in `directory`."""
    tasks: dict[str, list[float]] = {}
    sql: dict[str, list[float]] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for name, values in data["tasks"].items():
            total = tasks.setdefault(name, [0.0] * len(values))
            for index, value in enumerate(values):
                total[index] += value
        for statement, values in data["sql"].items():
            total = sql.setdefault(statement, [0, 0.0])
            for index, value in enumerate(values):
                total[index] += value
    return {"tasks": tasks, "sql": sql}


def stats_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What the workers did between two `read_stats`."""
    result: dict[str, Any] = {}
    for key in ("tasks", "sql"):
        result[key] = {}
        for name, values in after[key].items():
            previous = before[key].get(name, [0] * len(values))
            delta = [value - old for value, old in zip(values, previous, strict=True)]
            if delta[0]:
                result[key][name] = delta
    return result


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (p95 of 100 values is the 95th smallest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def median_run(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The run whose `key` is the median (the lower one of an even count), with `<key>_all` added."""
    chosen = dict(sorted(runs, key=lambda run: run[key])[(len(runs) - 1) // 2])
    chosen[f"{key}_all"] = [run[key] for run in runs]
    return chosen
