"""Credentials: server-to-server authentication configured once per tenant (OAuth2 client credentials,
JWT bearer, private_key_jwt) and used in flows as `{{ credential('name') }}`.

Settings that are not secret live in `Credential.config`, under the names the API uses (`tokenUrl`,
`clientId`, ...); the secret ones (`clientSecret`, `privateKey`, `hmacSecret`) are encrypted together
in `encrypted_secrets` with BATON_SECRETS_KEY. `token_for` answers the cached access token while it has
more than REFRESH_MARGIN left, and otherwise asks the token endpoint for a new one and caches it,
encrypted too. Secret values and tokens leave this module only through `token_for` (for the run
context, which masks them): no message, log line or returned metadata holds one.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote_plus, urlencode, urlsplit

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.fernet import InvalidToken
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.db import IntegrityError, connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from flows.errors import BatonError
from flows.models import Credential
from flows.services.secrets import decrypt_text, encrypt_text
from flows.spec.namespaces import within

logger = logging.getLogger(__name__)

CLIENT_CREDENTIALS = Credential.Type.OAUTH2_CLIENT_CREDENTIALS.value
JWT_BEARER = Credential.Type.OAUTH2_JWT_BEARER.value
PRIVATE_KEY_JWT = Credential.Type.OAUTH2_PRIVATE_KEY_JWT.value

# A token is used until this long before it expires: a task that starts with it still has a minute
# to make its calls. A token that lives less than this is used once and not cached.
REFRESH_MARGIN = timedelta(seconds=60)
HTTP_TIMEOUT = 10.0  # seconds to connect to the token endpoint, and for each read of its answer
ASSERTION_LIFETIME = 300  # seconds a signed assertion is valid: one token request
_MAX_RESPONSE_BYTES = 1024 * 1024
_MAX_SECRET_CHARS = 64 * 1024
_MAX_TEXT_CHARS = 2000
_MAX_MESSAGE_CHARS = 500

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}")
_RESERVED_NAMES = {"search"}  # `credentials/search` is the list, not a credential
_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*")
_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
_HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
_RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_EC_ALGORITHMS = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
_KEY_ALGORITHMS = (*_RSA_ALGORITHMS, *_EC_ALGORITHMS)
_MIN_RSA_BITS = 2048
_RESERVED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "nbf", "jti")

_COMMON_FIELDS = ("tokenUrl", "scope", "audience", "namespaces")
_ASSERTION_FIELDS = ("assertionAudience", "signingAlgorithm", "keyId", "additionalClaims")
SETTINGS: dict[str, tuple[str, ...]] = {
    CLIENT_CREDENTIALS: (*_COMMON_FIELDS, "clientId", "clientAuthMethod"),
    JWT_BEARER: (*_COMMON_FIELDS, "issuer", "subject", "clientId", *_ASSERTION_FIELDS),
    PRIVATE_KEY_JWT: (*_COMMON_FIELDS, "clientId", *_ASSERTION_FIELDS),
}
"""The non-secret settings of each type, as the API names them."""
SECRET_SETTINGS: dict[str, tuple[str, ...]] = {
    CLIENT_CREDENTIALS: ("clientSecret",),
    JWT_BEARER: ("privateKey", "hmacSecret"),
    PRIVATE_KEY_JWT: ("privateKey",),
}
"""The write-only settings of each type: stored encrypted, never answered."""
_ENTRY_FIELDS = ("name", "description", "type")
# What GET answers and a client may send back unchanged with PUT: ignored on input.
_READ_ONLY_FIELDS = ("id", "created", "updated", "tokenExpiresAt", "storedSecrets")


class CredentialError(BatonError):
    code = "credential_error"


class InvalidCredential(CredentialError):
    """A create or update the rules refuse; `path` names the field. The message never holds a value
    of a secret setting."""

    code = "invalid_credential"
    http_status = 422

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


class CredentialNotFound(CredentialError):
    code = "credential_not_found"
    http_status = 404

    def __init__(self, name: str) -> None:
        super().__init__(f"no credential `{name}`")


class CredentialExists(CredentialError):
    code = "credential_exists"
    http_status = 409

    def __init__(self, name: str) -> None:
        super().__init__(f"credential `{name}` already exists")
        self.path = "name"


class CredentialNotAllowed(CredentialError):
    code = "credential_not_allowed"
    http_status = 403

    def __init__(self, name: str, namespace: str) -> None:
        super().__init__(
            f"credential `{name}` may not be used in namespace `{namespace}` (see its `namespaces`)"
        )


class CredentialUnavailable(CredentialError):
    """No token could be had: the token endpoint refused (its `error` and `error_description` are
    kept), could not be reached, or answered something that is not a token."""

    code = "credential_unavailable"
    http_status = 502

    def __init__(
        self,
        name: str,
        message: str,
        *,
        error: str | None = None,
        error_description: str | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(f"credential `{name}`: {message}")
        self.error = error
        self.error_description = error_description
        self.retryable = retryable


@dataclass(frozen=True)
class CredentialInfo:
    """What may be shown of a credential: its settings, never a secret setting's value nor the token."""

    name: str
    description: str
    type: str
    config: dict[str, Any]
    stored_secrets: tuple[str, ...]  # which secret settings are set, by name
    created: datetime
    updated: datetime
    token_expires_at: datetime | None


@dataclass(frozen=True)
class Token:
    access_token: str
    token_type: str | None
    expires_in: int | None  # seconds, as the endpoint said; None when it did not
    expires_at: datetime | None
    scope: str | None


# -- input


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidCredential(
            "must be 1 to 200 letters, digits, `_`, `.` or `-`, starting with a letter, digit or `_`",
            path="name",
        )
    if name in _RESERVED_NAMES:
        raise InvalidCredential(f"`{name}` is reserved", path="name")
    return name


def _check_type(kind: Any) -> str:
    if kind not in SETTINGS:
        raise InvalidCredential(f"must be one of {', '.join(SETTINGS)}", path="type")
    return str(kind)


def _check_description(description: Any) -> str:
    if description is None:
        return ""
    if not isinstance(description, str):
        raise InvalidCredential("must be a string", path="description")
    return description


def _text(body: Mapping[str, Any], field: str, required: bool = False) -> str | None:
    value = body.get(field)
    if value is None or value == "":
        if required:
            raise InvalidCredential("is required", path=field)
        return None
    if not isinstance(value, str) or len(value) > _MAX_TEXT_CHARS:
        raise InvalidCredential(f"must be a string of at most {_MAX_TEXT_CHARS} characters", path=field)
    return value


def _url(body: Mapping[str, Any], field: str) -> str | None:
    value = _text(body, field, required=field == "tokenUrl")
    if value is None:
        return None
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise InvalidCredential("must be an http:// or https:// URL with a host", path=field)
    if parts.username is not None or parts.password is not None:
        raise InvalidCredential("must not hold a user or password (use the client settings)", path=field)
    if parts.fragment:
        raise InvalidCredential("must not have a #fragment", path=field)
    return value


def _choice(body: Mapping[str, Any], field: str, choices: Iterable[str], default: str | None) -> str | None:
    value = body.get(field)
    if value is None or value == "":
        return default
    allowed = tuple(choices)
    if value not in allowed:
        raise InvalidCredential(f"must be one of {', '.join(allowed)}", path=field)
    return str(value)


def _namespaces(body: Mapping[str, Any]) -> list[str] | None:
    value = body.get("namespaces")
    if value is None or value == []:
        return None
    if not isinstance(value, list):
        raise InvalidCredential("must be a list of namespaces", path="namespaces")
    for index, namespace in enumerate(value):
        if not isinstance(namespace, str) or len(namespace) > 300 or not _NAMESPACE.fullmatch(namespace):
            raise InvalidCredential(
                "must be a namespace: dot-separated names of letters, digits, `_` and `-`",
                path=f"namespaces[{index}]",
            )
    return sorted(set(value))


def _claims(body: Mapping[str, Any]) -> dict[str, Any] | None:
    value = body.get("additionalClaims")
    if value is None or value == {}:
        return None
    if not isinstance(value, dict):
        raise InvalidCredential("must be an object of claims", path="additionalClaims")
    for claim in value:
        if claim in _RESERVED_CLAIMS:
            raise InvalidCredential(
                f"`{claim}` is set by Baton ({', '.join(_RESERVED_CLAIMS)} are)",
                path=f"additionalClaims.{claim}",
            )
    return dict(value)


def _secret(body: Mapping[str, Any], stored: Mapping[str, str], field: str) -> tuple[str | None, bool]:
    """The value of a secret setting (given, else the stored one) and whether it was given now."""
    value = body.get(field)
    if value is None:
        return stored.get(field), False
    if not isinstance(value, str) or value == "" or len(value) > _MAX_SECRET_CHARS:
        raise InvalidCredential(
            f"must be a non-empty string of at most {_MAX_SECRET_CHARS} characters", path=field
        )
    return value, True


def _private_key(pem: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # The parser's reason is left out: the message must not echo any of the key.
        raise InvalidCredential(
            "must be an unencrypted PEM private key (RSA or EC, PKCS#8 or traditional)", path="privateKey"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise InvalidCredential("must be an RSA or EC private key", path="privateKey")
    return key


def _algorithm_of(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    for algorithm, curve in _EC_ALGORITHMS.items():
        if key.curve.name == curve:
            return algorithm
    raise InvalidCredential(
        f"the EC curve {key.curve.name} is not supported (P-256, P-384 or P-521)", path="privateKey"
    )


def _check_key_fits(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, algorithm: str) -> None:
    if algorithm in _RSA_ALGORITHMS:
        if not isinstance(key, rsa.RSAPrivateKey):
            raise InvalidCredential(f"{algorithm} needs an RSA key", path="privateKey")
        if key.key_size < _MIN_RSA_BITS:
            raise InvalidCredential(f"the RSA key must have at least {_MIN_RSA_BITS} bits", path="privateKey")
    elif not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != _EC_ALGORITHMS[algorithm]:
        raise InvalidCredential(
            f"{algorithm} needs an EC key on curve {_EC_ALGORITHMS[algorithm]}", path="privateKey"
        )


def _signing(
    kind: str, body: Mapping[str, Any], stored: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """`signingAlgorithm` (given, or inferred from the key) and the one secret it signs with."""
    private_key, key_given = _secret(body, stored, "privateKey")
    hmac_secret, hmac_given = (None, False)
    if kind == JWT_BEARER:
        hmac_secret, hmac_given = _secret(body, stored, "hmacSecret")
    allowed = (*_KEY_ALGORITHMS, *_HMAC_ALGORITHMS) if kind == JWT_BEARER else _KEY_ALGORITHMS
    algorithm = _choice(body, "signingAlgorithm", allowed, None)
    if algorithm is None:
        # What was sent now decides; else what is stored.
        if private_key and (key_given or not hmac_given):
            algorithm = _algorithm_of(_private_key(private_key))
        elif hmac_secret:
            algorithm = "HS256"
    if algorithm is None:
        needed = "`privateKey` (PEM) or `hmacSecret`" if kind == JWT_BEARER else "a PEM private key"
        raise InvalidCredential(f"is required: {needed} to sign assertions with", path="privateKey")
    if algorithm in _HMAC_ALGORITHMS:
        if not hmac_secret:
            raise InvalidCredential(f"is required to sign with {algorithm}", path="hmacSecret")
        minimum = int(algorithm[2:]) // 8  # RFC 7518 3.2: a key at least as long as the hash
        if len(hmac_secret.encode()) < minimum:
            raise InvalidCredential(f"must have at least {minimum} bytes for {algorithm}", path="hmacSecret")
        return {"signingAlgorithm": algorithm}, {"hmacSecret": hmac_secret}
    if not private_key:
        raise InvalidCredential(f"is required to sign with {algorithm}", path="privateKey")
    _check_key_fits(_private_key(private_key), algorithm)
    return {"signingAlgorithm": algorithm}, {"privateKey": private_key}


def _clean_settings(
    kind: str, body: Mapping[str, Any], stored: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The config and the secret settings to store for `body`; a secret setting it omits keeps its
    `stored` value. Raises InvalidCredential naming the field."""
    allowed = (*SETTINGS[kind], *SECRET_SETTINGS[kind])
    for field in body:
        if field not in allowed and field not in _ENTRY_FIELDS and field not in _READ_ONLY_FIELDS:
            raise InvalidCredential(
                f"is not a setting of {kind} credentials ({', '.join(allowed)})", path=field
            )
    config: dict[str, Any] = {
        "tokenUrl": _url(body, "tokenUrl"),
        "scope": _text(body, "scope"),
        "audience": _text(body, "audience"),
        "namespaces": _namespaces(body),
    }
    secrets: dict[str, str] = {}
    if kind == CLIENT_CREDENTIALS:
        config["clientId"] = _text(body, "clientId", required=True)
        config["clientAuthMethod"] = _choice(body, "clientAuthMethod", _AUTH_METHODS, "client_secret_basic")
        client_secret, _ = _secret(body, stored, "clientSecret")
        if not client_secret:
            raise InvalidCredential("is required", path="clientSecret")
        secrets["clientSecret"] = client_secret
    else:
        if kind == JWT_BEARER:
            config["issuer"] = _text(body, "issuer", required=True)
            config["subject"] = _text(body, "subject")
            config["clientId"] = _text(body, "clientId")
        else:
            config["clientId"] = _text(body, "clientId", required=True)
        config["assertionAudience"] = _text(body, "assertionAudience")
        config["keyId"] = _text(body, "keyId")
        config["additionalClaims"] = _claims(body)
        signing, secrets = _signing(kind, body, stored)
        config.update(signing)
    return {field: value for field, value in config.items() if value is not None}, secrets


# -- create, read, update, delete


def _stored_secrets_of(kind: str, config: Mapping[str, Any]) -> tuple[str, ...]:
    # Validation keeps exactly the secret settings the type and algorithm use: no decryption needed.
    if kind == CLIENT_CREDENTIALS:
        return ("clientSecret",)
    return ("hmacSecret",) if config.get("signingAlgorithm") in _HMAC_ALGORITHMS else ("privateKey",)


def describe(row: Credential) -> CredentialInfo:
    return CredentialInfo(
        name=row.name,
        description=row.description,
        type=row.type,
        config=dict(row.config),
        stored_secrets=_stored_secrets_of(row.type, row.config),
        created=row.created,
        updated=row.updated,
        token_expires_at=row.token_expires_at if row.encrypted_token else None,
    )


def _row(tenant: str, name: str, lock: bool = False) -> Credential:
    rows = Credential.objects.filter(tenant_id=tenant, name=name)
    row = (rows.select_for_update() if lock else rows).first()
    if row is None:
        raise CredentialNotFound(name)
    return row


def get_credential(tenant: str, name: str) -> CredentialInfo:
    """Raises CredentialNotFound."""
    return describe(_row(tenant, name))


def search_credentials(
    tenant: str, text: str = "", ordering: Iterable[str] = ("name",)
) -> QuerySet[Credential]:
    """The tenant's credentials whose name or description contains `text` (any case)."""
    rows = Credential.objects.filter(tenant_id=tenant)
    if text:
        rows = rows.filter(Q(name__icontains=text) | Q(description__icontains=text))
    return rows.order_by(*ordering)


def create_credential(tenant: str, body: Mapping[str, Any]) -> CredentialInfo:
    """Store a new credential from API fields (`name`, `type`, `description` and the type's settings).

    Raises InvalidCredential (nothing stored), CredentialExists.
    """
    name = _check_name(body.get("name"))
    kind = _check_type(body.get("type"))
    description = _check_description(body.get("description"))
    config, secrets = _clean_settings(kind, body, stored={})
    if Credential.objects.filter(tenant_id=tenant, name=name).exists():
        raise CredentialExists(name)
    now = timezone.now()
    try:
        with transaction.atomic():
            row = Credential.objects.create(
                tenant_id=tenant,
                name=name,
                description=description,
                type=kind,
                config=config,
                encrypted_secrets=encrypt_text(json.dumps(secrets)),
                created=now,
                updated=now,
            )
    except IntegrityError:  # created by someone else since the check
        raise CredentialExists(name) from None
    logger.info("credential created name=%s type=%s", name, kind, extra={"tenant": tenant})
    return describe(row)


def _decrypted_secrets(row: Credential) -> dict[str, str]:
    """Raises InvalidToken when BATON_SECRETS_KEY does not decrypt them."""
    return json.loads(decrypt_text(row.encrypted_secrets)) if row.encrypted_secrets else {}


def update_credential(tenant: str, name: str, body: Mapping[str, Any]) -> CredentialInfo:
    """Replace a credential's description and settings; a secret setting left out keeps its stored
    value, the type defaults to the current one. The cached token is dropped.

    Raises CredentialNotFound, InvalidCredential (nothing changed).
    """
    with transaction.atomic():
        row = _row(tenant, name, lock=True)
        if body.get("name") not in (None, name):
            raise InvalidCredential("a credential cannot be renamed: create another one", path="name")
        kind = row.type if body.get("type") is None else _check_type(body.get("type"))
        description = _check_description(body.get("description"))
        try:
            stored = _decrypted_secrets(row)
        except InvalidToken:
            # Stored under a key that is gone: the update must give the secret settings again.
            stored = {}
        config, secrets = _clean_settings(kind, body, stored)
        row.type, row.description, row.config = kind, description, config
        row.encrypted_secrets = encrypt_text(json.dumps(secrets))
        row.encrypted_token, row.token_expires_at = "", None
        row.updated = timezone.now()
        row.save()
    logger.info("credential updated name=%s type=%s", name, kind, extra={"tenant": tenant})
    return describe(row)


def delete_credential(tenant: str, name: str) -> None:
    """Raises CredentialNotFound."""
    deleted, _ = Credential.objects.filter(tenant_id=tenant, name=name).delete()
    if not deleted:
        raise CredentialNotFound(name)
    logger.info("credential deleted name=%s", name, extra={"tenant": tenant})


# -- tokens


_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


def _refresh_lock(tenant: str, name: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault((tenant, name), threading.Lock())


def _cached_token(row: Credential) -> str | None:
    if not row.encrypted_token or row.token_expires_at is None:
        return None
    if row.token_expires_at - REFRESH_MARGIN <= timezone.now():
        return None
    try:
        return decrypt_text(row.encrypted_token)
    except InvalidToken:
        return None  # cached under a key that is gone: fetch another


def _check_namespace(row: Credential, namespace: str | None) -> None:
    allowed = row.config.get("namespaces") or []
    if namespace is not None and allowed and not any(within(namespace, parent) for parent in allowed):
        raise CredentialNotAllowed(row.name, namespace)


def token_for(tenant: str, name: str, namespace: str | None = None) -> str:
    """The access token of credential `name`: the cached one while it has more than REFRESH_MARGIN
    left, else a new one from its token endpoint (then cached). `namespace` is the flow's: a
    credential with `namespaces` serves only those and their children.

    Raises CredentialNotFound, CredentialNotAllowed, CredentialUnavailable.
    """
    row = _row(tenant, name)
    _check_namespace(row, namespace)
    cached = _cached_token(row)
    if cached is not None:
        return cached
    return _refresh(tenant, name, reuse_cached=True).access_token


def fetch_new_token(tenant: str, name: str) -> Token:
    """Ask the token endpoint for a new token now, whatever is cached (the new one is cached).

    Raises CredentialNotFound, CredentialUnavailable.
    """
    return _refresh(tenant, name, reuse_cached=False)


def _refresh(tenant: str, name: str, reuse_cached: bool) -> Token:
    # One refresh at a time per credential: threads of this process queue on a lock, and processes on
    # the row lock (PostgreSQL). Whoever waited finds the new token cached and makes no request.
    with _refresh_lock(tenant, name):
        if connection.features.has_select_for_update:
            with transaction.atomic():
                return _refresh_row(_row(tenant, name, lock=True), reuse_cached)
        # SQLite has no row locks, and its IMMEDIATE transactions hold the database's write lock:
        # no transaction around the request. Two processes may both fetch a token; both are valid.
        return _refresh_row(_row(tenant, name), reuse_cached)


def _refresh_row(row: Credential, reuse_cached: bool) -> Token:
    if reuse_cached:
        cached = _cached_token(row)
        if cached is not None:
            return Token(cached, None, None, row.token_expires_at, None)
    token = _request_token(row)
    cacheable = token.expires_at is not None and token.expires_at - REFRESH_MARGIN > timezone.now()
    # Compare-and-set on `updated`: a token fetched with settings changed meanwhile is not kept.
    Credential.objects.filter(pk=row.pk, updated=row.updated).update(
        encrypted_token=encrypt_text(token.access_token) if cacheable else "",
        token_expires_at=token.expires_at if cacheable else None,
    )
    logger.info(
        "credential token fetched name=%s expires_in=%s cached=%s",
        row.name,
        token.expires_in,
        cacheable,
        extra={"tenant": row.tenant_id},
    )
    return token


def _request_token(row: Credential) -> Token:
    config = row.config
    try:
        secrets = _decrypted_secrets(row)
    except InvalidToken:
        raise CredentialUnavailable(
            row.name,
            "its secret settings cannot be decrypted with the configured BATON_SECRETS_KEY (was the key "
            "changed? list the old key after the new one, or set the secrets again)",
        ) from None
    form: dict[str, str] = {}
    headers: dict[str, str] = {}
    if row.type == CLIENT_CREDENTIALS:
        form["grant_type"] = "client_credentials"
        if config.get("clientAuthMethod") == "client_secret_post":
            form["client_id"], form["client_secret"] = config["clientId"], secrets["clientSecret"]
        else:
            # RFC 6749 2.3.1: both parts form-urlencoded before they are joined and base64-encoded.
            pair = f"{quote_plus(config['clientId'])}:{quote_plus(secrets['clientSecret'])}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    elif row.type == JWT_BEARER:
        form["grant_type"] = JWT_BEARER_GRANT
        form["assertion"] = _assertion(
            config, secrets, config["issuer"], config.get("subject") or config["issuer"]
        )
        if config.get("clientId"):
            form["client_id"] = config["clientId"]
    else:
        form["grant_type"] = "client_credentials"
        form["client_id"] = config["clientId"]
        form["client_assertion_type"] = CLIENT_ASSERTION_TYPE
        form["client_assertion"] = _assertion(config, secrets, config["clientId"], config["clientId"])
    for field in ("scope", "audience"):
        if config.get(field):
            form[field] = config[field]
    return _post(row.name, config["tokenUrl"], form, headers, secrets.values())


def _assertion(config: Mapping[str, Any], secrets: Mapping[str, str], issuer: str, subject: str) -> str:
    """A signed JWT (RFC 7523): for the jwt-bearer grant, or as private_key_jwt's client assertion."""
    now = int(time.time())
    claims = {
        **(config.get("additionalClaims") or {}),
        "iss": issuer,
        "sub": subject,
        "aud": config.get("assertionAudience") or config["tokenUrl"],
        "iat": now,
        "exp": now + ASSERTION_LIFETIME,
        "jti": uuid.uuid4().hex,
    }
    algorithm = config["signingAlgorithm"]
    key = secrets["hmacSecret"] if algorithm in _HMAC_ALGORITHMS else secrets["privateKey"]
    headers = {"kid": config["keyId"]} if config.get("keyId") else None
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A token request is never sent on elsewhere: it carries the client's secret."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def _endpoint(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"  # no query string: it could hold a key


def _scrub(text: str, secrets: Iterable[str]) -> str:
    # An endpoint could echo what it was sent: no secret value reaches a message.
    for value in sorted(secrets, key=len, reverse=True):
        if len(value) >= 3:
            text = text.replace(value, "******")
    return text[:_MAX_MESSAGE_CHARS]


def _post(
    name: str, url: str, form: Mapping[str, str], headers: Mapping[str, str], secrets: Iterable[str]
) -> Token:
    secrets = list(secrets)
    endpoint = _endpoint(url)
    request = urllib.request.Request(
        url,
        data=urlencode(form).encode(),
        method="POST",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
            "User-Agent": "Baton",
            **headers,
        },
    )
    try:
        with _opener.open(request, timeout=HTTP_TIMEOUT) as response:
            status, body = response.status, response.read(_MAX_RESPONSE_BYTES + 1)
    except urllib.error.HTTPError as error:
        try:
            body = error.read(_MAX_RESPONSE_BYTES)
        except (OSError, http.client.HTTPException):
            body = b""
        finally:
            error.close()
        raise _refusal(name, endpoint, error.code, body, secrets) from None
    except (OSError, http.client.HTTPException) as error:  # URLError, timeouts, resets
        reason = getattr(error, "reason", None) or error
        raise CredentialUnavailable(
            name, _scrub(f"cannot reach the token endpoint {endpoint}: {reason}", secrets), retryable=True
        ) from None
    if len(body) > _MAX_RESPONSE_BYTES:
        raise CredentialUnavailable(name, f"the token endpoint {endpoint} answered more than 1 MiB")
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and "error" in payload:  # some endpoints refuse with a 200
        raise _refusal(name, endpoint, status, body, secrets)
    access_token = payload.get("access_token") if isinstance(payload, dict) else None
    if not isinstance(access_token, str) or not access_token:
        raise CredentialUnavailable(
            name, f"the token endpoint {endpoint} answered HTTP {status} without an `access_token`"
        )
    assert isinstance(payload, dict)
    expires_in = _seconds(payload.get("expires_in"))
    return Token(
        access_token=access_token,
        token_type=payload.get("token_type") if isinstance(payload.get("token_type"), str) else None,
        expires_in=expires_in,
        expires_at=timezone.now() + timedelta(seconds=expires_in) if expires_in is not None else None,
        scope=payload.get("scope") if isinstance(payload.get("scope"), str) else None,
    )


def _seconds(value: Any) -> int | None:
    # Some endpoints send "3600" as a string.
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 0 else None


def _refusal(name: str, endpoint: str, status: int, body: bytes, secrets: list[str]) -> CredentialUnavailable:
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    error = payload.get("error") if isinstance(payload, dict) else None
    description = payload.get("error_description") if isinstance(payload, dict) else None
    error = _scrub(str(error), secrets) if error is not None else None
    description = _scrub(str(description), secrets) if description is not None else None
    said = ": ".join(part for part in (error, description) if part) or "no OAuth2 error in its answer"
    return CredentialUnavailable(
        name,
        f"the token endpoint {endpoint} refused with HTTP {status}: {said}",
        error=error,
        error_description=description,
        retryable=status >= 500 or status == 429,
    )
