"""How a setting is declared: a default, the help shown in --help, env/example.env and the README, and its bounds."""

from typing import Any

from pydantic import Field


def setting(default: Any, help: str, secret: bool = False, **bounds) -> Any:
    """A field whose help is its description; a secret is left out of repr and shown as <hidden> in errors."""
    extra = {"repr": False, "json_schema_extra": {"secret": True}} if secret else {}
    return Field(default, description=help, **extra, **bounds)
