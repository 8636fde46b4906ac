"""`manage.py tenants create|list`: tenants from the shell."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from flows.errors import BatonError


class Command(BaseCommand):
    help = "Create or list tenants."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="create a tenant")
        create.add_argument("tenant_id")
        create.add_argument("--name", default="")
        actions.add_parser("list", help="list the tenants")

    def handle(self, *args: Any, **options: Any) -> None:
        from flows.models import Tenant
        from flows.services.tenants import create_tenant

        if options["action"] == "list":
            for tenant in Tenant.objects.order_by("id"):
                self.stdout.write(f"{tenant.id}\t{tenant.name}")
            return
        try:
            tenant = create_tenant(options["tenant_id"], options["name"])
        except BatonError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"created tenant {tenant.id}")
