"""`manage.py tokens create|list|revoke`: API tokens (`Authorization: Bearer ...`) from the shell."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone


class Command(BaseCommand):
    help = "Create, list or revoke API tokens. A new token is printed once; only its hash is stored."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="create a token for a user and print it")
        create.add_argument("username")
        create.add_argument("--name", default="cli")
        create.add_argument("--days", type=int, default=None, help="expires after this many days")
        listing = actions.add_parser("list", help="list a user's tokens (never their secret)")
        listing.add_argument("username")
        revoke = actions.add_parser("revoke", help="revoke a token by its key (the part after `baton_`)")
        revoke.add_argument("key")

    def handle(self, *args: Any, **options: Any) -> None:
        from django.contrib.auth.models import User

        from flows.models import ApiToken
        from flows.services.access import create_token, revoke_token

        action = options["action"]
        if action == "revoke":
            token = ApiToken.objects.filter(key=options["key"]).first()
            if token is None:
                raise CommandError(f"no token with key `{options['key']}`")
            revoke_token(token)
            self.stdout.write(f"revoked token {token.key}")
            return
        user = User.objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"no user `{options['username']}`")
        if action == "list":
            for token in ApiToken.objects.filter(user=user).order_by("created"):
                state = "revoked" if token.revoked_at else f"expires {token.expires_at or 'never'}"
                self.stdout.write(f"{token.key}\t{token.name}\t{state}")
            return
        if options["days"] is not None and options["days"] < 1:
            raise CommandError("--days must be at least 1")
        expires = timezone.now() + timedelta(days=options["days"]) if options["days"] else None
        _, text = create_token(user, options["name"], expires)
        self.stdout.write(text)
