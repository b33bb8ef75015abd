"""The `pipeline` job run in this process, as `jobs/run_pipeline.py` does: the same graph as the UI's, with a
console that prints each step as it starts and ends, the jobs' own output live, and a summary at the end."""

import io
import logging
import sys
import time
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import dagster as dg

from mlplatform.errors import ConfigError
from mlplatform.orchestration import build_definitions
from mlplatform.orchestration.assets import PIPELINE_ASSETS, STEP_OF
from mlplatform.settings import Settings

ORDER = list(PIPELINE_ASSETS)  # batch scoring and monitoring have jobs of their own
NEEDS_MLFLASK = {"challenger_evaluation", "champion_deployment", "served_predictions"}
_ALIASES = {}  # the CLI jobs' names still select their (first) asset
for _name, _step in STEP_OF.items():
    _ALIASES.setdefault(_step, _name)


def select(start: str | None = None, only: str | None = None) -> list[str]:
    """The assets to run: all, from `start` on, or `only` one; by asset name or by the CLI job's name."""
    for flag, value in (("--from", start), ("--only", only)):
        if value is not None and _ALIASES.get(value, value) not in ORDER:
            names = ", ".join(f"{name} ({STEP_OF[name]})" for name in ORDER)
            raise ConfigError(f"{flag} {value!r} is not a step; choose one of: {names}")
    if only:
        return [_ALIASES.get(only, only)]
    return ORDER[ORDER.index(_ALIASES.get(start, start)) :] if start else list(ORDER)


@dataclass
class StepReport:
    name: str
    outcome: str = "not run"
    seconds: float = 0.0
    attempts: int = 0
    checks: list[tuple[str, bool]] = field(default_factory=list)
    error: str = ""


class _Console(logging.Handler):
    """Dagster's event stream as the runner's lines: step start, retry, end, and each check's verdict."""

    def __init__(self, selection: list[str], reports: dict[str, StepReport]):
        super().__init__()
        self.selection, self.reports, self.started = selection, reports, {}

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        event, step = meta.get("dagster_event"), meta.get("step_key")
        if event is None:
            if step and record.levelno >= logging.INFO:
                print(f"   {meta.get('orig_message', record.getMessage())}", flush=True)
            return
        kind = event.event_type_value
        report = self.reports.get(step)
        if kind in ("STEP_START", "STEP_RESTARTED") and report:
            report.attempts += 1
            self.started.setdefault(step, time.monotonic())
            if report.attempts == 1:
                index = self.selection.index(step) + 1
                print(f"\n== [{index}/{len(self.selection)}] {step} (job: {STEP_OF[step]})", flush=True)
        elif kind == "STEP_UP_FOR_RETRY" and report:
            wait = getattr(event.event_specific_data, "seconds_to_wait", None)
            print(f"   {step} failed: {_error(event)}; retry {report.attempts} in {wait or 0:g}s", flush=True)
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE") and report:
            report.seconds = time.monotonic() - self.started.get(step, time.monotonic())
            report.outcome = "ok" if kind == "STEP_SUCCESS" else "FAILED"
            report.error = _error(event) if kind == "STEP_FAILURE" else ""
            tries = f", {report.attempts} attempts" if report.attempts > 1 else ""
            detail = f": {report.error}" if report.error else ""
            print(f"== {step}: {report.outcome} in {report.seconds:.1f}s{tries}{detail}", flush=True)
        elif kind == "STEP_FAILURE" and step:  # a check step ("<asset>_<check>"): it failed or raised
            owner = next((r for name, r in self.reports.items() if step.startswith(name + "_")), None)
            if owner:
                owner.outcome, owner.error = "checks failed", owner.error or _error(event)
                print(f"   {step}: {owner.error}", flush=True)
        elif kind == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            asset = data.asset_key.to_user_string()
            verdict = "PASS" if data.passed else "FAIL"
            print(f"   check {asset}.{data.check_name}: {verdict}{_check_detail(data)}", flush=True)
            if asset in self.reports:
                self.reports[asset].checks.append((data.check_name, data.passed))
                if not data.passed:
                    self.reports[asset].outcome = "checks failed"


def _error(event) -> str:
    """The user-facing line of a step's error: our PlatformError's message, not Dagster's wrapper."""
    info = getattr(event.event_specific_data, "error", None)
    while info is not None and info.cause is not None:
        info = info.cause
    if info is None:
        return ""
    return info.message.strip().splitlines()[-1].split(": ", 1)[-1] if info.message else info.cls_name or ""


def _check_detail(data) -> str:
    if data.description:
        return f" ({data.description})"
    numbers = {k: v.value for k, v in (data.metadata or {}).items() if isinstance(v.value, int | float)}
    return f" ({', '.join(f'{k}={v}' for k, v in numbers.items())})" if numbers else ""


def _console_logger(selection: list[str], reports: dict[str, StepReport]) -> dg.LoggerDefinition:
    @dg.logger(description="the runner's step lines")
    def console(_init):
        logger = logging.Logger("pipeline", logging.DEBUG)
        logger.addHandler(_Console(selection, reports))
        return logger

    return console


PROGRESS_SECONDS = 10  # how often a progress bar prints a line when the output is not a terminal


class _PlainLines(io.TextIOBase):
    """Off a terminal, a progress bar redrawn in place becomes whole lines, one every PROGRESS_SECONDS (and its last
    state when it closes): a log file or CI gets readable lines, not thousands of carriage returns."""

    def __init__(self, stream):
        self.stream = stream
        self._last_redraw = -PROGRESS_SECONDS
        self._pending = ""  # the newest redraw not shown yet

    def write(self, text: str) -> int:
        if text.startswith("\r") and "\n" not in text:  # a bar redrawing itself
            self._pending = text.strip("\r").rstrip()
            if time.monotonic() - self._last_redraw >= PROGRESS_SECONDS:
                self._show_pending()
            return len(text)
        if self._pending and not text.strip("\r\n"):  # the bar closing: its final state
            self._show_pending()
            return len(text)
        self.stream.write(text.replace("\r\n", "\n").replace("\r", "\n").replace("\n\n", "\n"))
        self.stream.flush()
        return len(text)

    def _show_pending(self) -> None:
        self.stream.write(self._pending + "\n")
        self.stream.flush()
        self._pending, self._last_redraw = "", time.monotonic()

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return False


def instance(settings: Settings) -> dg.DagsterInstance:
    """DAGSTER_HOME's instance, so the run shows in the UI beside the UI's own; else one that forgets."""
    if settings.dagster_home is None:
        return dg.DagsterInstance.ephemeral()
    return dg.DagsterInstance.from_config(str(prepare_home(settings.dagster_home)))


def prepare_home(folder: Path) -> Path:
    """DAGSTER_HOME as an absolute, existing folder with our dagster.yaml (telemetry off) unless it has one."""
    home = folder.resolve()
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_bytes(files("mlplatform.orchestration").joinpath("dagster.yaml").read_bytes())
    return home


def execute(settings: Settings, selection: list[str], retries: int, instance: dg.DagsterInstance) -> list[StepReport]:
    """Run the `pipeline` job over `selection`; return one report per asset, in order."""
    reports = {name: StepReport(name) for name in selection}
    defs = build_definitions(settings, retries=retries)
    job = defs.resolve_job_def("pipeline").with_logger_defs({"console": _console_logger(selection, reports)})
    stderr = sys.stderr
    if not stderr.isatty():
        sys.stderr = _PlainLines(stderr)
    try:
        job.execute_in_process(
            instance=instance,
            asset_selection=[dg.AssetKey(name) for name in selection],
            raise_on_error=False,
            run_config={"loggers": {"console": {}}},  # ours replaces Dagster's default console logger
            tags={"launched_by": "jobs/run_pipeline.py"},
        )
    finally:
        sys.stderr = stderr
    return [reports[name] for name in selection]
