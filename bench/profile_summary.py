"""Summarise py-spy's raw (collapsed) stacks written by `bench/run.py --profile DIR`.

    .venv/bin/python bench/profile_summary.py DIR/baton-worker.txt [--top 30] [--match flows/,plugins/]

For each process kind (the first process of a stack and its children, e.g. the Celery worker's
main process and its pool processes), prints the samples, then the functions with the largest
inclusive share (the function is anywhere on the stack) and self share (the function is at the top
of the stack). `--within start_execution` keeps only the stacks going through that function (shares
are then of its time), `--exclude importlib._bootstrap` drops those inside an import. `--match` keeps only frames whose file contains one of the given substrings in the
inclusive table (e.g. Baton's own code). Self time is also grouped by package (`psycopg` at the top
of the stack is mostly waiting for PostgreSQL; `django/db` is the ORM building queries and rows). `--lines` keeps one entry per line (call site) instead of
one per function.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from pathlib import Path

_PROCESS = re.compile(r'process \d+:"[^"]*";')  # a command line may contain ";"


def load(path: Path) -> dict[str, list[tuple[list[str], int]]]:
    """Stacks by process kind: `main` (the first process of each stack) or `child` (any below it)."""
    kinds: dict[str, list[tuple[list[str], int]]] = defaultdict(list)
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        processes, position = 0, 0
        while match := _PROCESS.match(stack, position):
            processes, position = processes + 1, match.end()
        kind = "main process" if processes <= 1 else "child processes"
        kinds[kind].append((stack[position:].split(";"), int(count)))
    return kinds


_LINE = re.compile(r":\d+\)$")
_FILE = re.compile(r"\((.*?)(?::\d+)?\)$")
_DEEP = {"django", "flows", "celery", "kombu", "plugins"}  # packages shown two levels deep


def package(frame: str) -> str:
    """`django/db`, `psycopg`, `flows/services`... of a frame like `f (django/db/models/query.py:12)`."""
    found = _FILE.search(frame)
    parts = (found.group(1) if found else frame).split("/")
    if len(parts) == 1:
        return "stdlib" if parts[0].endswith(".py") or parts[0].startswith("<") else parts[0]
    return "/".join(parts[:2] if parts[0] in _DEEP and len(parts) > 2 else parts[:1])


def summarise(
    stacks: list[tuple[list[str], int]], top: int, match: list[str], lines_too: bool = False
) -> str:
    total = sum(count for _, count in stacks)
    if not lines_too:  # one entry per function, not per line of it
        stacks = [([_LINE.sub(")", frame) for frame in frames], count) for frames, count in stacks]
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    for frames, count in stacks:
        if frames:
            self_time[frames[-1]] += count
            packages[package(frames[-1])] += count
        for frame in set(frames):
            if not match or any(item in frame for item in match):
                inclusive[frame] += count
    lines = [f"{total} samples", "", "inclusive:"]
    lines += [f"  {count / total:6.1%}  {frame}" for frame, count in inclusive.most_common(top)]
    lines += ["", "self, by package of the innermost frame:"]
    lines += [f"  {count / total:6.1%}  {name}" for name, count in packages.most_common(top)]
    lines += ["", "self:"]
    lines += [f"  {count / total:6.1%}  {frame}" for frame, count in self_time.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--match", default="", help="comma-separated substrings of frames to keep")
    parser.add_argument("--lines", action="store_true", help="one entry per line, not per function")
    parser.add_argument("--within", default="", help="only stacks through a frame containing this")
    parser.add_argument("--exclude", default="", help="drop stacks through a frame containing this")
    args = parser.parse_args()
    match = [item for item in args.match.split(",") if item]
    for kind, stacks in sorted(load(args.path).items()):
        if args.within:
            stacks = [item for item in stacks if any(args.within in frame for frame in item[0])]
        if args.exclude:
            stacks = [item for item in stacks if not any(args.exclude in frame for frame in item[0])]
        print(f"== {args.path.name}: {kind}")
        print(summarise(stacks, args.top, match, args.lines))
        print()


if __name__ == "__main__":
    main()
