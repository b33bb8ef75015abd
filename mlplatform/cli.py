"""What every job script shares: flags that default from env vars, logging, and errors turned into exit codes."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from mlplatform.errors import ConfigError, PlatformError
from mlplatform.settings import Settings

EXIT_ERROR = 1


def parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser whose help is the job's docstring and shows each flag's env var and default."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--verbose", action="store_true", help="debug logs and tracebacks [or LOG_LEVEL=DEBUG]")
    return p


def load_settings(name: str, env_files: tuple = ()) -> Settings:
    """The settings of this process, read once at its entry point from the environment (and `env_files`);
    a bad value ends the program with one line naming the variable."""
    try:
        return Settings.load(env_files)
    except ConfigError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_ERROR) from None


def start(name: str, build_parser: Callable[[Settings], argparse.ArgumentParser], argv) -> tuple:
    """A job's first lines: its settings (read once, here), its flags (defaulting from them), its logging."""
    settings = load_settings(name)
    args = build_parser(settings).parse_args(argv)
    setup_logging(settings, args.verbose)
    return settings, args


def flag(p: argparse.ArgumentParser, flag: str, field: str, current: Settings | None, **kwargs) -> None:
    """Add `flag` for the setting `field`: it defaults to the env var (in `current`; None when `current` is not
    read yet), and is checked by the same rules."""
    info = Settings.model_fields[field]

    def parse(raw: str):
        try:
            return Settings.parse_value(field, raw)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc).replace(field.upper(), flag, 1)) from None

    parse.__name__ = field
    default = info.default
    p.add_argument(
        flag,
        default=getattr(current, field) if current is not None else None,
        type=parse,
        dest=kwargs.pop("dest", field),
        help=f"{info.description} [env {field.upper()}, default: {default}]",
        **kwargs,
    )


def table(rows: list[list], headers: list[str]) -> str:
    """A plain-text table, for the candidates and predictions the jobs print."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def setup_logging(settings: Settings, verbose: bool = False) -> None:
    """LOG_LEVEL (DEBUG with --verbose); the libraries' chatter stays at WARNING unless asked for."""
    level = logging.DEBUG if verbose else getattr(logging, settings.log_level)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)
    quiet = logging.WARNING if level > logging.DEBUG else logging.INFO
    for noisy in (
        "botocore",
        "urllib3",
        "s3transfer",
        "filelock",
        "httpx",
        "httpcore",
        "datasets",
        "matplotlib",
        "alembic",
    ):
        logging.getLogger(noisy).setLevel(quiet)
    # Said once per logged model and always true here (local, unlicensed test models): not worth a warning.
    logging.getLogger("mlflow.transformers").setLevel(logging.ERROR if level > logging.DEBUG else logging.DEBUG)
    import warnings

    if level > logging.DEBUG:
        warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow\..*")
        warnings.filterwarnings("ignore", category=FutureWarning)


def run(job: Callable[[], int | None], name: str) -> int:
    """Run a job body; a PlatformError becomes one clear line on stderr and a non-zero exit."""
    try:
        return job() or 0
    except PlatformError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a crash ends in one readable line; the traceback with LOG_LEVEL=DEBUG / --verbose
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            logging.getLogger(name).exception("unexpected error")
        print(f"{name}: error: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        if not logging.getLogger().isEnabledFor(logging.DEBUG):
            print(f"{name}: run with --verbose (or LOG_LEVEL=DEBUG) for the traceback", file=sys.stderr)
        return EXIT_ERROR
