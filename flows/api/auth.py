"""Authentication: HTTP Basic for users, `Authorization: Bearer <token>` for API tokens."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from django.contrib.auth.models import User
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from flows.services.access import user_of_token


class TokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[User, Any] | None:
        header = authentication.get_authorization_header(request).decode(errors="replace")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != self.keyword.lower():
            return None  # not ours: Basic, or anonymous
        user = user_of_token(token.strip())
        if user is None:
            raise exceptions.AuthenticationFailed("invalid, expired or revoked API token")
        return user, None

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="baton"'


class BasicAuthentication(authentication.BasicAuthentication):
    """HTTP Basic, with the password check remembered for a minute.

    Checking a password costs a deliberately slow hash (hundreds of milliseconds), which a client
    sending Basic credentials on every request would pay every time. A successful check is kept in
    this process, keyed by a digest of the credentials, and reused while the user's stored password
    hash is unchanged and the user is active.
    """

    www_authenticate_realm = "baton"

    def authenticate_credentials(
        self, userid: str, password: str, request: Request | None = None
    ) -> tuple[User, None]:
        digest = hashlib.sha256(f"{userid}\0{password}".encode()).digest()
        now = time.monotonic()
        remembered = _verified.get(digest)
        if remembered is not None and remembered[2] > now:
            user = User.objects.filter(pk=remembered[0], is_active=True).first()
            if user is not None and user.password == remembered[1]:
                return user, None
        user, _ = super().authenticate_credentials(userid, password, request)
        if len(_verified) >= _VERIFIED_MAX:
            _verified.clear()
        _verified[digest] = (user.pk, user.password, now + _VERIFIED_SECONDS)
        return user, None


_VERIFIED_SECONDS = 60.0
_VERIFIED_MAX = 10_000
_verified: dict[bytes, tuple[int, str, float]] = {}
