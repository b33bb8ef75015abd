"""How a setting is declared: a default, the help shown in --help, env/example.env and the README, and its bounds."""

from collections.abc import Mapping
from typing import Any

from pydantic import Field, ValidationError


def setting(default: Any, help: str, secret: bool = False, **bounds) -> Any:
    """A field whose help is its description; a secret is left out of repr and shown as <hidden> in errors."""
    extra = {"repr": False, "json_schema_extra": {"secret": True}} if secret else {}
    return Field(default, description=help, **extra, **bounds)


def describe_error(exc: ValidationError, values: Mapping[str, Any], name: str | None = None, model=None) -> str:
    """One line naming the variable, its value (hidden where `model` declares it secret) and what was expected."""
    error = exc.errors()[0]
    field = name or str(error["loc"][0]) if error["loc"] else name or ""
    message = error["msg"].removeprefix("Value error, ")
    if message.startswith("Input should be "):
        message = "expected " + message.removeprefix("Input should be ")
    given = values.get(field, error.get("input"))
    shown = "<hidden>" if _is_secret(model, field) else repr(given)
    return f"{field.upper()}={shown} is not valid: {message[0].lower()}{message[1:]}"


def _is_secret(model, name: str) -> bool:
    info = getattr(model, "model_fields", {}).get(name)
    return bool(info and isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("secret"))
