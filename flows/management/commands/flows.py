"""`manage.py flows validate|deploy|sync DIR`: a folder of flow files and the stored flows, through
the services (no server needed). `baton flows ...` does validate and deploy over HTTP instead."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from flows.bootstrap import ensure_database
from flows.cli.deploy import flow_files, is_under
from flows.errors import FlowValidationError
from flows.models import Flow
from flows.services import ensure_tenant, parse_flow, save_flow_revision

STATE_FILE = ".baton-sync.json"
STATE_VERSION = 1
Direction = Literal["both", "up", "down"]


class Command(BaseCommand):
    help = "Validate, deploy or sync a folder of flow YAML files with the flows stored in a tenant."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)

        def action(name: str, help_text: str) -> CommandParser:
            sub = actions.add_parser(name, help=help_text)
            sub.add_argument("directory", help="folder of *.yml / *.yaml flow files (searched recursively)")
            return sub

        action("validate", "check every flow file; print each problem with its file and line")
        deploy = action("deploy", "save every flow file as a new revision of its flow")
        sync = action("sync", "two-way sync of the folder and the tenant's flows (state in .baton-sync.json)")
        for sub in (deploy, sync):
            sub.add_argument("--tenant", default=None, help="tenant (default: BATON_DEFAULT_TENANT, `main`)")
            sub.add_argument("--namespace", default=None, help="only this namespace and its children")
        deploy.add_argument(
            "--override", action="store_true", help="replace flows stored with another source"
        )
        deploy.add_argument("--fail-fast", action="store_true", help="stop at the first file that fails")
        sync.add_argument(
            "--direction",
            choices=["both", "up", "down"],
            default="both",
            help="up: folder to server only; down: server to folder only (default both)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        root = Path(options["directory"])
        if not root.is_dir():
            raise CommandError(f"{root} is not a folder")
        if options["action"] == "validate":
            self._validate(root)
            return
        ensure_database()
        tenant = options["tenant"] or settings.BATON_DEFAULT_TENANT
        ensure_tenant(tenant)
        if options["action"] == "deploy":
            self._deploy(root, tenant, options["namespace"], options["override"], options["fail_fast"])
        else:
            self._sync(root, tenant, options["namespace"], options["direction"])

    def _validate(self, root: Path) -> None:
        invalid = 0
        files = flow_files(root)
        for path in files:
            try:
                spec = parse_flow(path.read_text(encoding="utf-8"))
            except FlowValidationError as error:
                invalid += 1
                for violation in error.violations:
                    self.stdout.write(f"{_where(path, violation.line, violation.column)}: {violation}")
                continue
            self.stdout.write(f"{path}: valid ({spec.namespace}.{spec.id})")
        self.stdout.write(f"{len(files) - invalid} valid, {invalid} invalid")
        if invalid:
            raise CommandError(f"{invalid} invalid flow file(s)", returncode=1)

    def _deploy(
        self, root: Path, tenant: str, namespace: str | None, override: bool, fail_fast: bool
    ) -> None:
        counts = dict.fromkeys(("created", "updated", "unchanged", "skipped", "failed"), 0)
        for path in flow_files(root):
            action, detail = self._deploy_file(path, tenant, namespace, override)
            counts[action] += 1
            (self.stderr if action == "failed" else self.stdout).write(f"{action:<9} {detail}")
            if action == "failed" and fail_fast:
                break
        self.stdout.write(", ".join(f"{count} {action}" for action, count in counts.items()))
        if counts["failed"]:
            raise CommandError(f"{counts['failed']} flow file(s) failed", returncode=1)

    def _deploy_file(self, path: Path, tenant: str, namespace: str | None, override: bool) -> tuple[str, str]:
        source = path.read_text(encoding="utf-8")
        try:
            spec = parse_flow(source)
        except FlowValidationError as error:
            return "failed", f"{path}: {error}"
        name = f"{spec.namespace}.{spec.id}"
        if namespace and not is_under(spec.namespace, namespace):
            return "failed", f"{name} ({path}): namespace is not `{namespace}` nor one of its children"
        stored = Flow.objects.for_tenant(tenant).filter(namespace=spec.namespace, flow_id=spec.id).first()
        if stored is not None and not stored.deleted:
            if stored.source == source:
                return "unchanged", f"{name} (revision {stored.revision})"
            if not override:
                return "skipped", f"{name}: stored with another source (use --override to replace it)"
        flow = save_flow_revision(tenant, source)
        return ("created" if flow.revision == 1 else "updated"), f"{name} (revision {flow.revision})"

    def _sync(self, root: Path, tenant: str, namespace: str | None, direction: Direction) -> None:
        state = _load_state(root, tenant)
        local, invalid = _local_flows(root, namespace)
        for path, message in invalid:
            self.stderr.write(f"error     {path}: {message}")
        blocked = {key for key, _ in invalid if key is not None}
        stored = Flow.objects.for_tenant(tenant).filter(deleted=False)
        server = {
            f"{flow.namespace}.{flow.flow_id}": flow
            for flow in stored
            if namespace is None or is_under(flow.namespace, namespace)
        }
        report = _Report()
        for key in sorted((set(local) | set(server)) - blocked):
            self._sync_one(root, tenant, key, local.get(key), server.get(key), state, direction, report)
        _save_state(root, tenant, state)
        for line in report.lines:
            (self.stderr if line.startswith(("conflict", "error")) else self.stdout).write(line)
        errors = report.errors + len(invalid)
        self.stdout.write(
            f"{report.up} up, {report.down} down, {report.same} in sync, {report.conflicts} conflict(s), "
            f"{errors} error(s)"
        )
        if report.conflicts or errors:
            raise CommandError(f"{report.conflicts} conflict(s), {errors} error(s)", returncode=1)

    def _sync_one(
        self,
        root: Path,
        tenant: str,
        key: str,
        local: _LocalFlow | None,
        flow: Flow | None,
        state: dict[str, Any],
        direction: Direction,
        report: _Report,
    ) -> None:
        synced = state.get(key)  # {"revision", "sha256"} as of the last sync, or None
        local_changed = local is not None and (synced is None or local.sha256 != synced["sha256"])
        server_changed = flow is not None and (synced is None or flow.revision != synced["revision"])
        if local is not None and flow is not None and local.source == flow.source:
            state[key] = _entry(flow.revision, local.source)
            report.same += 1
        elif local is not None and (flow is None or (local_changed and not server_changed)):
            if flow is None and synced is not None and not local_changed:
                report.add(
                    "conflict", key, "deleted on the server since the last sync; the local file is kept"
                )
            elif direction == "down":
                report.add("skipped", key, f"changed locally ({local.path}), not pushed (--direction down)")
            else:
                try:
                    saved = save_flow_revision(tenant, local.source)
                except FlowValidationError as error:
                    report.add("error", key, f"{local.path}: {error}")
                    return
                state[key] = _entry(saved.revision, local.source)
                report.add("up", key, f"{local.path} -> revision {saved.revision}")
        elif flow is not None and (local is None or (server_changed and not local_changed)):
            if local is None and synced is not None and not server_changed:
                report.add("conflict", key, "deleted locally since the last sync; the server keeps it")
            elif direction == "up":
                report.add(
                    "skipped",
                    key,
                    f"changed on the server (revision {flow.revision}), not pulled (--direction up)",
                )
            else:
                target = local.path if local is not None else root / f"{key}.yml"
                if local is None and target.exists():
                    report.add("error", key, f"{target} exists and holds another flow; not overwritten")
                    return
                target.write_bytes(flow.source.encode("utf-8"))
                state[key] = _entry(flow.revision, flow.source)
                report.add("down", key, f"revision {flow.revision} -> {target}")
        else:
            assert local is not None and flow is not None
            since = f"revision {synced['revision']}" if synced else "never synced"
            report.add(
                "conflict",
                key,
                f"changed locally ({local.path}) and on the server (revision {flow.revision}; last sync: {since})",
            )


@dataclass(frozen=True)
class _LocalFlow:
    path: Path
    source: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.source.encode("utf-8")).hexdigest()


class _Report:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.up = self.down = self.same = self.conflicts = self.errors = 0

    def add(self, action: str, key: str, detail: str) -> None:
        self.lines.append(f"{action:<9} {key}: {detail}")
        if action in ("up", "down"):
            setattr(self, action, getattr(self, action) + 1)
        elif action == "conflict":
            self.conflicts += 1
        elif action == "error":
            self.errors += 1


def _where(path: Path, line: int | None, column: int | None) -> str:
    return f"{path}:{line}" + (f":{column}" if column else "") if line else str(path)


def _local_flows(root: Path, namespace: str | None) -> tuple[dict[str, _LocalFlow], list[tuple[Any, str]]]:
    """The folder's flows by `namespace.id`, and the files that cannot be used: (key or None, message)
    where the key, when the YAML still names a flow, keeps that flow out of this sync."""
    flows: dict[str, _LocalFlow] = {}
    problems: list[tuple[Any, str]] = []
    for path in flow_files(root):
        source = path.read_text(encoding="utf-8")
        try:
            spec = parse_flow(source)
        except FlowValidationError as error:
            problems.append((_loose_key(source), f"{path}: invalid flow: {error}"))
            continue
        if namespace and not is_under(spec.namespace, namespace):
            continue
        key = f"{spec.namespace}.{spec.id}"
        if key in flows:
            problems.append((key, f"{path}: flow {key} is also in {flows[key].path}"))
            continue
        flows[key] = _LocalFlow(path, source)
    for key, _ in problems:
        flows.pop(key, None)
    return flows, problems


def _loose_key(source: str) -> str | None:
    try:
        document = yaml.safe_load(source)
    except yaml.YAMLError:
        return None
    if (
        isinstance(document, dict)
        and isinstance(document.get("namespace"), str)
        and isinstance(document.get("id"), str)
    ):
        return f"{document['namespace']}.{document['id']}"
    return None


def _entry(revision: int, source: str) -> dict[str, Any]:
    return {"revision": revision, "sha256": hashlib.sha256(source.encode("utf-8")).hexdigest()}


def _load_state(root: Path, tenant: str) -> dict[str, Any]:
    """The revision and file digest of each flow as of the last sync (empty before the first)."""
    path = root / STATE_FILE
    if not path.exists():
        return {}
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise CommandError(f"{path} is not valid JSON ({error}); delete it to start over") from error
    if body.get("tenant") != tenant:
        raise CommandError(f"{root} was synced with tenant `{body.get('tenant')}`, not `{tenant}`")
    return dict(body.get("flows") or {})


def _save_state(root: Path, tenant: str, flows: dict[str, Any]) -> None:
    body = {"version": STATE_VERSION, "tenant": tenant, "flows": dict(sorted(flows.items()))}
    (root / STATE_FILE).write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
