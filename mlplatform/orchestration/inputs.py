"""What a Dagster launchpad may ask job 1 to read.

The launchpad is a web form: whoever reaches Dagster's UI can type a `csv:` path or a URL, and the code server
would read it with its own rights, inside the compose network (MinIO, MLflow). Values that come from the run
config are therefore held to LAUNCHPAD_DATA_ROOTS (folders) and LAUNCHPAD_URL_HOSTS (hosts). The code server's
own settings (its environment) are the operator's and are not restricted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from mlplatform.errors import ConfigError


@dataclass(frozen=True)
class LaunchpadLimits:
    roots: tuple[Path, ...]
    hosts: frozenset[str]

    @classmethod
    def from_settings(cls, settings) -> LaunchpadLimits:
        roots = tuple(Path(root.strip()).resolve() for root in settings.launchpad_data_roots.split(",") if root.strip())
        hosts = frozenset(host.strip().lower() for host in settings.launchpad_url_hosts.split(",") if host.strip())
        return cls(roots, hosts)

    def check_url(self, url: str, what: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or (parts.hostname or "").lower() not in self.hosts:
            raise ConfigError(f"{what}: only http(s) URLs on LAUNCHPAD_URL_HOSTS may be given from the launchpad")
        return url

    def check_path(self, location: str, what: str) -> str:
        path = Path(location).resolve()
        if not any(path == root or root in path.parents for root in self.roots):
            raise ConfigError(f"{what}: only files under LAUNCHPAD_DATA_ROOTS may be given from the launchpad")
        return location

    def check_source(self, source: str | None, imdb_url: str | None) -> None:
        """Refuse run-config values that would reach beyond the allowed folders and hosts (ConfigError)."""
        if imdb_url:
            self.check_url(imdb_url, "imdb_url")
        if source and source.startswith("csv:"):
            location = source.removeprefix("csv:")
            if "://" in location:
                self.check_url(location, "source")
            else:
                self.check_path(location, "source")
