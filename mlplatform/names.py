"""The one rule for registered and served model names, registry aliases and `models:/` URIs.

Settings, job 4's flags, `POST /models`, MLDash's name field and MLFLASK_DEPLOYMENTS all check through here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlplatform.errors import ConfigError

NAME_MAX = 64
# Letters, digits, '_', '.', '-', with at least one that is not a dot ("." and ".." are paths, not names).
NAME_PATTERN = r"[A-Za-z0-9_.-]*[A-Za-z0-9_-][A-Za-z0-9_.-]*"
NAME_RULE = "letters, digits, '_', '.', '-' (1 to 64 characters, not only dots)"
ALIAS_PATTERN = r"[A-Za-z][A-Za-z0-9_-]{0,63}"
ALIAS_RULE = "a letter, then letters, digits, '_', '-' (up to 64 characters; not 'latest' or v<number>)"
_RESERVED_ALIAS = re.compile(r"latest|v[0-9]+")  # MLflow reads these as versions
_URI = re.compile(rf"models:/(?P<name>[^/@]{{1,{NAME_MAX}}})(?:/(?P<version>[0-9]{{1,9}})|@(?P<alias>[^/@]+))")
URI_RULE = "models:/<name>/<version> or models:/<name>@<alias>"


def is_valid_name(name: object) -> bool:
    return isinstance(name, str) and len(name) <= NAME_MAX and re.fullmatch(NAME_PATTERN, name) is not None


def is_valid_alias(alias: object) -> bool:
    return isinstance(alias, str) and bool(re.fullmatch(ALIAS_PATTERN, alias)) and not _RESERVED_ALIAS.fullmatch(alias)


def check_name(name: object, what: str = "model name") -> str:
    if not is_valid_name(name):
        raise ConfigError(f"{what} {name!r} must be {NAME_RULE}")
    return name


def check_alias(alias: object, what: str = "alias") -> str:
    if not is_valid_alias(alias):
        raise ConfigError(f"{what} {alias!r} must be {ALIAS_RULE}")
    return alias


@dataclass(frozen=True)
class ModelRef:
    """A registry reference: a registered model and either an alias or a pinned version."""

    name: str
    version: str | None = None
    alias: str | None = None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}@{self.alias}" if self.alias else f"models:/{self.name}/{self.version}"

    @classmethod
    def parse(cls, uri: object) -> ModelRef:
        """Only `models:/<name>/<version>` or `models:/<name>@<alias>` of the configured MLflow: no path, no URL."""
        match = _URI.fullmatch(uri) if isinstance(uri, str) else None
        valid = (
            match is not None
            and is_valid_name(match["name"])
            and (is_valid_alias(match["alias"]) if match["alias"] else int(match["version"]) >= 1)
        )
        if not valid:
            raise ConfigError(f"model_uri must be {URI_RULE}, with a name of {NAME_RULE} and an alias of {ALIAS_RULE}")
        return cls(match["name"], match["version"], match["alias"])
