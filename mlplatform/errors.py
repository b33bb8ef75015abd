"""Exceptions with actionable messages, caught at the edges (CLI exit codes, HTTP JSON errors)."""


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
