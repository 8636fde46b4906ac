"""`baton flows validate` and `baton flows deploy`: flow files of a folder against the server.

The client reads no YAML itself (it needs only the standard library): the server's
`flows/validate` endpoint says which flow a file holds and what is wrong with it.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from flows.cli.client import ApiError, Client

Action = Literal["created", "updated", "unchanged", "skipped", "failed"]
FLOW_SUFFIXES = (".yml", ".yaml")


def flow_files(root: Path) -> list[Path]:
    """The *.yml / *.yaml files under `root` (or `root` itself), sorted; hidden files and folders
    (`.git`, `.github` and its workflow YAML) are left out."""
    if root.is_file():
        return [root]
    return sorted(path for path in visible_files(root) if path.suffix.lower() in FLOW_SUFFIXES)


def visible_files(folder: Path) -> Iterator[Path]:
    """The files under `folder`, in name order, leaving out hidden files and folders."""
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            yield from visible_files(entry)
        elif entry.is_file():
            yield entry


def is_under(namespace: str, parent: str) -> bool:
    return namespace == parent or namespace.startswith(f"{parent}.")


@dataclass(frozen=True)
class Problem:
    """One problem of one flow file, where the server says it is."""

    file: str
    message: str
    line: int | None = None
    column: int | None = None
    path: str = ""
    document: int = 0

    def __str__(self) -> str:
        where = self.file if self.document == 0 else f"{self.file}[document {self.document}]"
        if self.line:
            where += f":{self.line}" + (f":{self.column}" if self.column else "")
        prefix = f"{self.path}: " if self.path else ""
        return f"{where}: {prefix}{self.message}"


@dataclass(frozen=True)
class Checked:
    """What the server's validation said about one file."""

    file: str
    flows: list[tuple[str | None, str | None]]  # (namespace, id) of each document
    problems: list[Problem]

    @property
    def is_valid(self) -> bool:
        return not self.problems


def check_file(client: Client, path: Path, shown: str) -> Checked:
    """Validate one file's documents on the server (nothing is saved)."""
    source = path.read_text(encoding="utf-8")
    answers = client.send_yaml("POST", "flows/validate", source) or []
    if not answers:
        return Checked(shown, [], [Problem(shown, "no flow in this file (it is empty)")])
    problems: list[Problem] = []
    for answer in answers:
        document = int(answer.get("index") or 0)
        errors = answer.get("errors") or []
        for error in errors:
            problems.append(
                Problem(
                    shown,
                    str(error.get("message") or ""),
                    error.get("line"),
                    error.get("column"),
                    str(error.get("path") or ""),
                    document,
                )
            )
        if not errors and answer.get("constraints"):  # Kestra's answer: one text, no lines
            problems.extend(
                Problem(shown, line.strip(), document=document)
                for line in str(answer["constraints"]).splitlines()
                if line.strip()
            )
    flows = [(answer.get("namespace"), answer.get("flow")) for answer in answers]
    return Checked(shown, flows, problems)


@dataclass(frozen=True)
class Deployed:
    file: str
    action: Action
    namespace: str | None = None
    id: str | None = None
    revision: int | None = None
    message: str = ""
    located: bool = False  # the message starts with `file:line:` already

    def as_json(self) -> dict[str, Any]:
        body = asdict(self)
        del body["located"]
        return body

    def __str__(self) -> str:
        if self.located:
            return f"{self.action:<9} {self.message}"
        name = f"{self.namespace}.{self.id}" if self.namespace and self.id else self.file
        revision = f" (revision {self.revision})" if self.revision is not None else ""
        detail = f": {self.message}" if self.message else ""
        return f"{self.action:<9} {name}{revision}{detail}"


def deploy_file(client: Client, path: Path, shown: str, namespace: str, override: bool) -> Deployed:
    """Create the file's flow, or replace it (`override`), or leave an existing one (skipped)."""
    checked = check_file(client, path, shown)
    if not checked.is_valid:
        problems = "; ".join(str(problem) for problem in checked.problems)
        return Deployed(shown, "failed", message=problems, located=True)
    if len(checked.flows) != 1:
        return Deployed(shown, "failed", message=f"holds {len(checked.flows)} flows; give each its own file")
    flow_namespace, flow_id = checked.flows[0]
    if not flow_namespace or not flow_id:
        return Deployed(shown, "failed", message="the flow has no `id` or `namespace`")
    if not is_under(flow_namespace, namespace):
        return Deployed(
            shown,
            "failed",
            flow_namespace,
            flow_id,
            message=f"namespace `{flow_namespace}` is not `{namespace}` nor one of its children",
        )
    source = path.read_text(encoding="utf-8")
    where = f"flows/{_quote(flow_namespace)}/{_quote(flow_id)}"
    try:
        existing = client.get(where, {"source": True})
    except ApiError as error:
        if error.status != 404:
            raise
        existing = None
    if existing is None:
        created = client.send_yaml("POST", "flows", source)
        return Deployed(shown, "created", flow_namespace, flow_id, created.get("revision"))
    if existing.get("source") == source:
        return Deployed(shown, "unchanged", flow_namespace, flow_id, existing.get("revision"))
    if not override:
        return Deployed(
            shown,
            "skipped",
            flow_namespace,
            flow_id,
            existing.get("revision"),
            "exists on the server with another source (use --override to replace it)",
        )
    updated = client.send_yaml("PUT", where, source)
    return Deployed(shown, "updated", flow_namespace, flow_id, updated.get("revision"))


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")
