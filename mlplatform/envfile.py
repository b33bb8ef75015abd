"""Reading `KEY=VALUE` env files (env/*.env) as data: no shell, no expansion, no code."""

from __future__ import annotations

import re
from pathlib import Path

from mlplatform.errors import ConfigError

_LINE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def read_env_file(path: str | Path) -> dict[str, str]:
    """Variables from an env file; `# comments`, blank lines and surrounding quotes are handled."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"env file {path} does not exist")
    values = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            raise ConfigError(f"{path}:{number}: expected KEY=VALUE")
        key, value = match.groups()
        value = re.sub(r"\s+#.*$", "", value).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values
