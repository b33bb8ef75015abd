"""The one rule for deployed model names, shared by MLFlask, job 4 and MLDash."""

import re

NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
NAME_RULE = "letters, digits, '_', '.', '-' (1 to 64 characters, not only dots)"


def is_valid_name(name) -> bool:
    return isinstance(name, str) and bool(NAME_RE.fullmatch(name)) and set(name) != {"."}
