"""Which storage serves a tenant or namespace: the instance default and BATON_STORAGE_OVERRIDES."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from flows.spec.namespaces import lineage
from orchestrator.env import env_secret

_OVERRIDES = "BATON_STORAGE_OVERRIDES"
_TENANT = re.compile(r"^[A-Za-z0-9_-]+$")
_NAMESPACE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
# Override fields (camelCase, as in flow YAML) -> S3Config attribute.
_S3_FIELDS = {
    "bucket": "bucket",
    "region": "region",
    "endpointUrl": "endpoint_url",
    "accessKey": "access_key",
    "secretKey": "secret_key",
    "prefix": "prefix",
}
_SETTING_SUFFIX = {
    "bucket": "BUCKET",
    "accessKey": "ACCESS_KEY",
    "secretKey": "SECRET_KEY",
    "endpointUrl": "ENDPOINT_URL",
}


@dataclass(frozen=True)
class LocalConfig:
    directory: Path


@dataclass(frozen=True)
class S3Config:
    bucket: str
    region: str = ""
    endpoint_url: str = ""
    access_key: str = ""
    secret_key: str = field(default="", repr=False)
    prefix: str = ""


StorageConfig = LocalConfig | S3Config


@dataclass(frozen=True)
class StorageSelection:
    """The instance default and the overrides, keyed by (tenant, namespace or None)."""

    default: StorageConfig
    overrides: Mapping[tuple[str, str | None], StorageConfig] = field(default_factory=dict)

    def config_for(self, tenant: str, namespace: str | None = None) -> StorageConfig:
        """The longest matching override: `tenant/a.b` covers `a.b` and `a.b.c`, then `tenant`."""
        for name in lineage(namespace) if namespace else []:
            found = self.overrides.get((tenant, name))
            if found is not None:
                return found
        return self.overrides.get((tenant, None), self.default)


def selection_from_settings(settings: Any) -> StorageSelection:
    """Parse the BATON_STORAGE* settings; raises ImproperlyConfigured naming the bad variable."""
    mode = settings.BATON_STORAGE
    default: StorageConfig
    if mode == "local":
        default = LocalConfig(Path(settings.BATON_STORAGE_DIR))
    elif mode == "s3":
        default = _checked_s3(
            S3Config(
                bucket=settings.BATON_STORAGE_S3_BUCKET,
                region=settings.BATON_STORAGE_S3_REGION,
                endpoint_url=settings.BATON_STORAGE_S3_ENDPOINT_URL,
                access_key=settings.BATON_STORAGE_S3_ACCESS_KEY,
                secret_key=settings.BATON_STORAGE_S3_SECRET_KEY,
                prefix=settings.BATON_STORAGE_S3_PREFIX,
            ),
            lambda name: f"BATON_STORAGE_S3_{_SETTING_SUFFIX[name]} (BATON_STORAGE=s3)",
        )
    else:
        raise ImproperlyConfigured(f"BATON_STORAGE must be `local` or `s3`, got {mode!r}")
    return StorageSelection(default, parse_overrides(settings.BATON_STORAGE_OVERRIDES))


def parse_overrides(raw: Mapping[str, Any]) -> dict[tuple[str, str | None], StorageConfig]:
    """`{"tenant" or "tenant/namespace": {"type": "local"|"s3", ...}}` -> configs by (tenant, namespace)."""
    if not isinstance(raw, Mapping):
        raise ImproperlyConfigured(f"{_OVERRIDES} must be a JSON object")
    overrides: dict[tuple[str, str | None], StorageConfig] = {}
    for name, value in raw.items():
        tenant, slash, namespace = name.partition("/")
        if not _TENANT.match(tenant) or (slash and not _NAMESPACE.match(namespace)):
            raise ImproperlyConfigured(
                f"{_OVERRIDES}: key {name!r} must be `tenant` or `tenant/namespace` (e.g. `main/company.team`)"
            )
        overrides[(tenant, namespace or None)] = parse_config(f"{_OVERRIDES}[{name!r}]", value)
    return overrides


def parse_config(where: str, value: Any) -> StorageConfig:
    """One override value; a string field may be `{"env": "NAME"}` to read it from the environment."""
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(f"{where} must be an object with a `type`")
    kind = value.get("type")
    if kind == "local":
        _reject_unknown(where, value, {"type", "dir"})
        if "dir" not in value:
            raise ImproperlyConfigured(f"{where}: `dir` is required for type local")
        return LocalConfig(Path(_string(where, "dir", value["dir"])).expanduser().resolve())
    if kind == "s3":
        _reject_unknown(where, value, {"type", *_S3_FIELDS})
        if "bucket" not in value:
            raise ImproperlyConfigured(f"{where}: `bucket` is required for type s3")
        fields = {
            attribute: _string(where, name, value[name])
            for name, attribute in _S3_FIELDS.items()
            if name in value
        }
        return _checked_s3(S3Config(**fields), lambda name: f"{where}.{name}")
    raise ImproperlyConfigured(f"{where}: `type` must be `local` or `s3`, got {kind!r}")


def _checked_s3(config: S3Config, label: Callable[[str], str]) -> S3Config:
    """Consistency checks shared by the default and the overrides; `label` names a field."""
    if not config.bucket:
        raise ImproperlyConfigured(f"{label('bucket')} must not be empty")
    if bool(config.access_key) != bool(config.secret_key):
        raise ImproperlyConfigured(
            f"{label('accessKey')} and {label('secretKey')}: give both, or neither to use boto3's credential chain"
        )
    if config.endpoint_url and not config.endpoint_url.startswith(("http://", "https://")):
        raise ImproperlyConfigured(f"{label('endpointUrl')} must start with http:// or https://")
    return config


def _reject_unknown(where: str, value: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ImproperlyConfigured(
            f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


def _string(where: str, name: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and set(value) == {"env"} and isinstance(value["env"], str):
        # env_secret also reads NAME_FILE, as for the instance's own secrets.
        resolved = env_secret(value["env"])
        if not resolved:
            raise ImproperlyConfigured(f"{where}.{name}: environment variable {value['env']} is not set")
        return resolved
    raise ImproperlyConfigured(f'{where}.{name} must be a string or {{"env": "VARIABLE"}}')
