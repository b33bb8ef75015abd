"""Exceptions with actionable messages, caught at the edges (CLI exit codes, HTTP JSON errors), and the
redaction of what such messages must not carry."""

import re


class PlatformError(Exception):
    """Base class: the message is shown to the user as is."""


class ConfigError(PlatformError):
    """A missing or inconsistent setting; the message names the variable."""


class DataError(PlatformError):
    """Input data that cannot be used: bad columns, labels, empty files, corrupt archives."""


class SourceUnavailable(PlatformError):
    """A data source could not be reached or downloaded."""


class LakeError(PlatformError):
    """The lake is missing a dataset, or a file does not match its manifest."""


_URI = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]{1,20}://[^\s'\"<>]+")
_USERINFO = re.compile(r"(?<=://)[^/@\s'\"]+@")


def redact(text: str) -> str:
    """`text` with every URI (http, s3, file, sqlite, postgresql+psycopg2, mysql, ...) replaced by `<uri>`: error
    messages from MLflow and the stores can name the tracking server, its database and their passwords."""
    return _URI.sub("<uri>", text)


def without_password(uri: str) -> str:
    """A URI fit for a log line: the `user:password@` part removed."""
    return _USERINFO.sub("", uri)
