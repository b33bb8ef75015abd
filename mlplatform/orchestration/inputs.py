"""What a Dagster launchpad may ask job 1 to read.

The launchpad is a web form: whoever reaches Dagster's UI can type a `csv:` path or a URL, and the code server
would read it with its own rights, inside the compose network (MinIO, MLflow). Values that come from the run
config are therefore held to LAUNCHPAD_DATA_ROOTS (folders) and LAUNCHPAD_URL_HOSTS (hosts). The code server's
own settings (its environment) are the operator's and are not restricted.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from mlplatform.errors import ConfigError


def _hosts(settings) -> set[str]:
    return {host.strip().lower() for host in settings.launchpad_url_hosts.split(",") if host.strip()}


def _roots(settings) -> list[Path]:
    return [Path(root.strip()).resolve() for root in settings.launchpad_data_roots.split(",") if root.strip()]


def check_url(url: str, settings, what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or (parts.hostname or "").lower() not in _hosts(settings):
        raise ConfigError(f"{what}: only http(s) URLs on LAUNCHPAD_URL_HOSTS may be given from the launchpad")
    return url


def check_path(location: str, settings, what: str) -> str:
    path = Path(location).resolve()
    if not any(path == root or root in path.parents for root in _roots(settings)):
        raise ConfigError(f"{what}: only files under LAUNCHPAD_DATA_ROOTS may be given from the launchpad")
    return location


def check_launchpad_source(source: str | None, imdb_url: str | None, settings) -> None:
    """Refuse run-config values that would reach beyond the allowed folders and hosts (ConfigError)."""
    if imdb_url:
        check_url(imdb_url, settings, "imdb_url")
    if source and source.startswith("csv:"):
        location = source.removeprefix("csv:")
        if "://" in location:
            check_url(location, settings, "source")
        else:
            check_path(location, settings, "source")
