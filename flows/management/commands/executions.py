"""`manage.py executions ...`: look at and act on an execution from the shell."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from flows.errors import BatonError
from flows.models import Execution
from flows.serializers import execution_dict


class Command(BaseCommand):
    help = "Show, kill, pause, resume, restart or replay an execution, or change a task run's state."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)

        def action(name: str, help_text: str) -> CommandParser:
            sub = actions.add_parser(name, help=help_text)
            sub.add_argument("execution_id")
            sub.add_argument("--tenant", default=None)
            return sub

        action("show", "print the execution as JSON")
        action("kill", "kill the execution, its running tasks and its subflows")
        action("pause", "pause a running execution (running tasks finish, nothing new starts)")
        resume = action("resume", "resume a paused execution (Pause task or paused by hand)")
        resume.add_argument("--input", action="append", default=[], metavar="KEY=VALUE")
        action("restart", "run the failed or killed task runs again in the same execution")
        replay = action("replay", "start a new execution from a task run (from the start by default)")
        replay.add_argument("--from", dest="taskrun_id", default=None, metavar="TASKRUN_ID")
        replay.add_argument("--input", action="append", default=None, metavar="KEY=VALUE")
        change = action(
            "change-status", "set a task run of a finished execution to SUCCESS, WARNING or FAILED"
        )
        change.add_argument("taskrun_id")
        change.add_argument("state")

    def handle(self, *args: Any, **options: Any) -> None:
        from flows import services
        from flows.management.commands.runflow import _parse_pairs
        from flows.services import control

        tenant = options["tenant"] or settings.BATON_DEFAULT_TENANT
        execution_id = options["execution_id"]
        action = options["action"]
        try:
            if action == "show":
                execution = Execution.objects.for_tenant(tenant).filter(id=execution_id).first()
                if execution is None:
                    raise control.ExecutionNotFound(f"execution `{execution_id}` not found")
                from flows.services.waiting import waiting_reasons

                shown = {**execution_dict(execution), "waitingReasons": waiting_reasons(execution)}
                self.stdout.write(json.dumps(shown, default=str))
                return
            if action == "kill":
                control.kill_execution(execution_id, tenant=tenant)
            elif action == "pause":
                control.pause_execution(execution_id, tenant=tenant)
            elif action == "resume":
                services.resume_execution(
                    execution_id, _parse_pairs(options["input"], "=", "--input"), tenant=tenant
                )
            elif action == "restart":
                control.restart_execution(execution_id, tenant=tenant)
            elif action == "replay":
                inputs = (
                    _parse_pairs(options["input"], "=", "--input") if options["input"] is not None else None
                )
                replay = control.replay_execution(execution_id, options["taskrun_id"], inputs, tenant=tenant)
                self.stdout.write(replay.id)
                return
            elif action == "change-status":
                control.change_taskrun_state(
                    execution_id, options["taskrun_id"], options["state"], tenant=tenant
                )
        except (ValueError, BatonError) as exc:
            self.stderr.write(str(exc))
            sys.exit(2)
        self.stdout.write(f"{action}: {execution_id}")
