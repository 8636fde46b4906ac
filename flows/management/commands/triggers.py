"""`manage.py triggers sync|list`: trigger state rows from the shell."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction


class Command(BaseCommand):
    help = "Create the trigger rows of every stored flow (after an upgrade), or list trigger states."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        actions.add_parser("sync", help="bring every flow's trigger rows in line with its current revision")
        listing = actions.add_parser("list", help="list trigger states")
        listing.add_argument("--tenant", default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        from flows.models import Flow, Trigger
        from flows.services.flows import spec_of_source
        from flows.services.schedules import sync_triggers
        from flows.services.variables import iso

        if options["action"] == "list":
            rows = Trigger.objects.order_by("tenant_id", "namespace", "flow_id", "trigger_id")
            if options["tenant"]:
                rows = rows.filter(tenant_id=options["tenant"])
            for row in rows:
                state = "disabled" if row.disabled else f"next {iso(row.next_fire) or '-'}"
                if row.execution_id:
                    state += f"\twaits for {row.execution_id}"
                if row.error:
                    state += f"\terror: {row.error}"
                self.stdout.write(
                    f"{row.tenant_id}\t{row.namespace}.{row.flow_id}\t{row.trigger_id}\t{state}"
                )
            return
        count = 0
        for flow in Flow.objects.filter(deleted=False).iterator():
            with transaction.atomic():
                sync_triggers(flow, spec_of_source(flow.source))
            count += 1
        self.stdout.write(f"synced the triggers of {count} flow(s)")
