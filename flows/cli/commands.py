"""What each `baton` command does; `main.py` parses the command line and calls one of these.

Every handler takes the parsed arguments and a Console, and returns the exit code.
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, TextIO

from flows.cli.client import ApiError, Client, FilePart
from flows.cli.config import ConfigError, Context, config_path, load_config, resolve
from flows.cli.deploy import Deployed, check_file, deploy_file, flow_files, visible_files

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# Kestra's terminal states; SUCCESS and WARNING count as a success for the exit code.
TERMINAL_STATES = {"SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED", "RETRIED"}
SUCCESSFUL_STATES = {"SUCCESS", "WARNING"}
_POLL_SECONDS = 0.5  # between two looks at an execution the server stopped waiting for
_WAIT_REQUEST_SECONDS = 3600.0  # the server holds `?wait=true` up to BATON_API_WAIT_SECONDS (600)


@dataclass
class Console:
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def warn(self, text: str) -> None:
        self.err.write(text + "\n")

    def json(self, value: Any) -> None:
        self.out.write(json.dumps(value, indent=2, default=str) + "\n")

    def raw(self, content: bytes) -> None:
        self.out.flush()
        buffer = getattr(self.out, "buffer", None)
        if buffer is not None:
            buffer.write(content)
            buffer.flush()
        else:
            self.out.write(content.decode("utf-8", errors="replace"))


def client_of(args: argparse.Namespace, timeout: float | None = None) -> Client:
    context = resolve(load_config(config_path()), vars(args))
    return Client(context) if timeout is None else Client(context, timeout)


def _segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")


# config ------------------------------------------------------------------------------------------


def config_add(args: argparse.Namespace, console: Console) -> int:
    if not args.server.startswith(("http://", "https://")):
        raise ConfigError(f"--server must be an http:// or https:// URL, got `{args.server}`")
    if args.password and not args.username:
        raise ConfigError("--password needs --username")
    config = load_config(config_path())
    config.contexts[args.name] = Context(
        server=args.server.rstrip("/"),
        tenant=args.tenant,
        token=args.token,
        username=args.username,
        password=args.password,
    )
    if args.use or config.current is None or config.current not in config.contexts:
        config.current = args.name
    config.save()
    current = " (current)" if config.current == args.name else ""
    console.say(f"context `{args.name}` saved in {config.path}{current}")
    return EXIT_OK


def config_use(args: argparse.Namespace, console: Console) -> int:
    config = load_config(config_path())
    if args.name not in config.contexts:
        raise ConfigError(f"no context `{args.name}` in {config.path} (see `baton config list`)")
    config.current = args.name
    config.save()
    console.say(f"using context `{args.name}`")
    return EXIT_OK


def config_remove(args: argparse.Namespace, console: Console) -> int:
    config = load_config(config_path())
    if config.contexts.pop(args.name, None) is None:
        raise ConfigError(f"no context `{args.name}` in {config.path} (see `baton config list`)")
    if config.current == args.name:
        config.current = None
    config.save()
    console.say(f"context `{args.name}` removed")
    return EXIT_OK


def config_list(args: argparse.Namespace, console: Console) -> int:
    config = load_config(config_path())
    rows = [
        {
            "name": name,
            "server": context.server,
            "tenant": context.tenant,
            "auth": context.auth,
            "current": name == config.current,
        }
        for name, context in sorted(config.contexts.items())
    ]
    if args.output == "json":
        console.json(rows)
        return EXIT_OK
    if not rows:
        console.say(f"no context in {config.path}: add one with `baton config add NAME --server URL`")
        return EXIT_OK
    _table(
        console,
        [
            ("*" if row["current"] else " ", row["name"], row["server"], row["tenant"], row["auth"])
            for row in rows
        ],
        ("", "NAME", "SERVER", "TENANT", "AUTH"),
    )
    return EXIT_OK


def _table(console: Console, rows: list[tuple[Any, ...]], header: tuple[str, ...]) -> None:
    cells = [tuple(str(cell) for cell in row) for row in [header, *rows]]
    widths = [max(len(row[index]) for row in cells) for index in range(len(header))]
    for row in cells:
        console.say("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


# flows -------------------------------------------------------------------------------------------


def flows_list(args: argparse.Namespace, console: Console) -> int:
    flows = client_of(args).pages("flows/search", {"namespace": args.namespace or None})
    if args.output == "json":
        console.json(flows)
    elif flows:
        _table(
            console,
            [
                (flow["namespace"], flow["id"], flow.get("revision", ""), flow.get("disabled", False))
                for flow in flows
            ],
            ("NAMESPACE", "ID", "REVISION", "DISABLED"),
        )
    return EXIT_OK


def flows_get(args: argparse.Namespace, console: Console) -> int:
    query = {"source": True, "revision": args.revision}
    flow = client_of(args).get(f"flows/{_segment(args.namespace)}/{_segment(args.id)}", query)
    if args.output == "json":
        console.json(flow)
    else:
        console.out.write(flow.get("source") or "")
    return EXIT_OK


def _flow_files(args: argparse.Namespace) -> tuple[Path, list[Path]]:
    root = Path(args.directory)
    if not root.exists():
        raise ConfigError(f"no such file or folder: {root}")
    files = flow_files(root)
    if not files:
        raise ConfigError(f"no *.yml or *.yaml file under {root}")
    return root, files


def flows_validate(args: argparse.Namespace, console: Console) -> int:
    root, files = _flow_files(args)
    client = client_of(args)
    checked = [check_file(client, path, _shown(path, root)) for path in files]
    invalid = [item for item in checked if not item.is_valid]
    if args.output == "json":
        console.json(
            [
                {
                    "file": item.file,
                    "valid": item.is_valid,
                    "flows": [{"namespace": namespace, "id": flow_id} for namespace, flow_id in item.flows],
                    "problems": [
                        {"message": p.message, "line": p.line, "column": p.column, "path": p.path}
                        for p in item.problems
                    ],
                }
                for item in checked
            ]
        )
    else:
        for item in checked:
            if item.is_valid:
                names = ", ".join(f"{namespace}.{flow_id}" for namespace, flow_id in item.flows)
                console.say(f"{item.file}: valid ({names})")
            for problem in item.problems:
                console.say(str(problem))
        console.say(f"{len(checked) - len(invalid)} valid, {len(invalid)} invalid")
    return EXIT_FAILED if invalid else EXIT_OK


def flows_deploy(args: argparse.Namespace, console: Console) -> int:
    root, files = _flow_files(args)
    client = client_of(args)
    results: list[Deployed] = []
    for path in files:
        shown = _shown(path, root)
        try:
            result = deploy_file(client, path, shown, args.namespace, args.override)
        except ApiError as error:
            result = Deployed(shown, "failed", message=error.message)
        except (OSError, UnicodeDecodeError) as error:
            result = Deployed(shown, "failed", message=f"cannot read: {error}")
        results.append(result)
        if args.output != "json":
            (console.warn if result.action == "failed" else console.say)(str(result))
        if result.action == "failed" and args.fail_fast:
            break
    counts = {
        action: sum(1 for r in results if r.action == action)
        for action in ("created", "updated", "unchanged", "skipped", "failed")
    }
    if args.output == "json":
        console.json({"results": [result.as_json() for result in results], "counts": counts})
    else:
        console.say(", ".join(f"{count} {action}" for action, count in counts.items()))
        if args.fail_fast and counts["failed"] and len(results) < len(files):
            console.warn(
                f"stopped at the first failure (--fail-fast): {len(files) - len(results)} file(s) not deployed"
            )
    return EXIT_FAILED if counts["failed"] else EXIT_OK


def _shown(path: Path, root: Path) -> str:
    """How a file is named in messages: as the user would type it from where they ran the command."""
    return str(path) if root.is_file() else str(root / path.relative_to(root))


# executions --------------------------------------------------------------------------------------


def executions_run(args: argparse.Namespace, console: Console) -> int:
    fields: list[tuple[str, str | FilePart]] = []
    for pair in args.input:
        key, found, value = pair.partition("=")
        if not found or not key:
            raise ConfigError(f"--input {pair!r}: expected KEY=VALUE or KEY=@FILE")
        if value.startswith("@"):
            path = Path(value[1:])
            try:
                content = path.read_bytes()
            except OSError as error:
                raise ConfigError(f"--input {key}: cannot read {path}: {error.strerror}") from None
            kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            fields.append((key, FilePart(path.name, content, kind)))
        else:
            fields.append((key, value))
    for label in args.label:
        if ":" not in label or label.startswith(":"):
            raise ConfigError(f"--label {label!r}: expected KEY:VALUE")
    deadline = time.monotonic() + args.timeout if args.timeout else None
    # Without a deadline the server holds the request until the end (`?wait=true`, up to its own
    # limit); with one, the client polls, so that it never loses the execution id to a timeout.
    server_waits = args.wait and deadline is None
    client = client_of(args, timeout=_WAIT_REQUEST_SECONDS if server_waits else None)
    query = {"wait": True if server_waits else None, "labels": args.label or None}
    path = f"executions/{_segment(args.namespace)}/{_segment(args.flow)}"
    execution = client.send_multipart("POST", path, fields, query).json()
    if args.wait:
        while execution["state"]["current"] not in TERMINAL_STATES:
            if deadline is not None and time.monotonic() > deadline:
                break
            time.sleep(_POLL_SECONDS)
            execution = client.get(f"executions/{_segment(execution['id'])}")
    if args.output == "json":
        console.json(execution)
    else:
        _print_execution(console, execution)
    if not args.wait:
        return EXIT_OK
    state = execution["state"]["current"]
    if state not in TERMINAL_STATES:
        console.warn(f"timed out after {args.timeout:g} s: execution {execution['id']} is still {state}")
        return EXIT_FAILED
    return EXIT_OK if state in SUCCESSFUL_STATES else EXIT_FAILED


def _print_execution(console: Console, execution: dict[str, Any]) -> None:
    state = execution.get("state") or {}
    console.say(
        f"execution {execution['id']} {execution['namespace']}.{execution['flowId']} "
        f"revision {execution.get('flowRevision')}"
    )
    duration = f" in {state['duration']}" if state.get("duration") else ""
    console.say(f"state {state.get('current')}{duration}")
    for run in execution.get("taskRunList") or []:
        value = f" [{run['value']}]" if run.get("value") is not None else ""
        outputs = f" {json.dumps(run['outputs'], default=str)}" if run.get("outputs") else ""
        console.say(f"  {run['state']['current']:<9} {run['taskId']}{value}{outputs}")
    if execution.get("outputs"):
        console.say(f"outputs {json.dumps(execution['outputs'], default=str)}")


# namespaces --------------------------------------------------------------------------------------


def namespaces_list(args: argparse.Namespace, console: Console) -> int:
    client = client_of(args)
    try:
        rows = client.pages("namespaces/search")
        names = [row["id"] if isinstance(row, dict) else str(row) for row in rows]
    except ApiError as error:
        if error.status != 404:
            raise
        # A server without the namespaces endpoint: the namespaces that hold flows.
        names = list(client.get("flows/distinct-namespaces") or [])
    if args.output == "json":
        console.json(names)
    else:
        for name in names:
            console.say(name)
    return EXIT_OK


# namespace files ---------------------------------------------------------------------------------


def _remote(path: str) -> str:
    """A namespace file path as the API wants it: absolute, `/`-separated, no `..`."""
    parts = [part for part in PurePosixPath("/" + path.replace("\\", "/")).parts[1:] if part not in ("", ".")]
    if ".." in parts:
        raise ConfigError(f"`..` is not allowed in a namespace file path: {path}")
    return "/" + "/".join(parts)


def _files_path(namespace: str, suffix: str = "") -> str:
    return f"namespaces/{_segment(namespace)}/files{suffix}"


def _is_directory(entry: dict[str, Any]) -> bool:
    return str(entry.get("type", "")).upper() == "DIRECTORY"  # Kestra writes `Directory`


def _listing(client: Client, namespace: str, folder: str) -> list[dict[str, Any]]:
    return list(client.get(_files_path(namespace, "/directory"), {"path": folder}) or [])


def _walk_remote(client: Client, namespace: str, folder: str, recursive: bool) -> Iterator[dict[str, Any]]:
    for entry in sorted(_listing(client, namespace, folder), key=lambda item: str(item.get("fileName"))):
        path = f"{folder.rstrip('/')}/{entry.get('fileName')}"
        yield {**entry, "path": path}
        if recursive and _is_directory(entry):
            yield from _walk_remote(client, namespace, path, recursive)


def nsfiles_list(args: argparse.Namespace, console: Console) -> int:
    client = client_of(args)
    entries = list(_walk_remote(client, args.namespace, _remote(args.path), args.recursive))
    if args.output == "json":
        console.json(entries)
        return EXIT_OK
    for entry in entries:
        if _is_directory(entry):
            console.say(f"{entry['path']}/")
        else:
            size = entry.get("size")
            console.say(entry["path"] + (f"  {size}" if size is not None else ""))
    return EXIT_OK


def nsfiles_get(args: argparse.Namespace, console: Console) -> int:
    answer = client_of(args).request("GET", _files_path(args.namespace), {"path": _remote(args.path)})
    if args.to:
        Path(args.to).write_bytes(answer.body)
        console.warn(f"wrote {len(answer.body)} bytes to {args.to}")
    else:
        console.raw(answer.body)
    return EXIT_OK


def nsfiles_delete(args: argparse.Namespace, console: Console) -> int:
    path = _remote(args.path)
    client_of(args).request("DELETE", _files_path(args.namespace), {"path": path})
    console.say(f"deleted {path}")
    return EXIT_OK


def _local_files(local: Path, destination: str) -> list[tuple[Path, str]]:
    """(local file, remote path) pairs: a file goes into the folder `destination`, a folder's
    files keep their relative paths under it; hidden files and folders are left out."""
    if local.is_file():
        return [(local, _remote(f"{destination}/{local.name}"))]
    return [
        (path, _remote(f"{destination}/{path.relative_to(local).as_posix()}"))
        for path in visible_files(local)
    ]


def nsfiles_upload(args: argparse.Namespace, console: Console) -> int:
    local = Path(args.local)
    if not local.exists():
        raise ConfigError(f"no such file or folder: {local}")
    client = client_of(args)
    existing: dict[str, set[str]] = {}  # remote folder -> names of the files already there

    def exists(remote: str) -> bool:
        folder = str(PurePosixPath(remote).parent)
        if folder not in existing:
            try:
                entries = _listing(client, args.namespace, folder)
            except ApiError as error:
                if error.status != 404:
                    raise
                entries = []  # a folder that does not exist yet
            existing[folder] = {str(entry.get("fileName")) for entry in entries if not _is_directory(entry)}
        return PurePosixPath(remote).name in existing[folder]

    counts = {"uploaded": 0, "skipped": 0, "failed": 0}
    results: list[dict[str, str]] = []
    for path, remote in _local_files(local, args.path):
        try:
            if not args.override and exists(remote):
                action, message = "skipped", "exists (use --override to replace it)"
            else:
                content = FilePart(path.name, path.read_bytes())
                client.send_multipart(
                    "POST", _files_path(args.namespace), [("fileContent", content)], {"path": remote}
                )
                action, message = "uploaded", ""
        except ApiError as error:
            action, message = "failed", error.message
        except OSError as error:
            action, message = "failed", f"cannot read {path}: {error.strerror}"
        counts[action] += 1
        results.append({"file": str(path), "path": remote, "action": action, "message": message})
        if args.output != "json":
            line = f"{action:<9} {remote}" + (f": {message}" if message else "")
            (console.warn if action == "failed" else console.say)(line)
        if action == "failed" and args.fail_fast:
            break
    if args.output == "json":
        console.json({"results": results, "counts": counts})
    else:
        console.say(", ".join(f"{count} {action}" for action, count in counts.items()))
    return EXIT_FAILED if counts["failed"] else EXIT_OK
