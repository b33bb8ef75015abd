"""Pipeline: the five jobs as Dagster assets, run in this process: the same graph as the Dagster UI's.

  raw_reviews -> clean_reviews -> finetuned_model -> champion_deployment -> served_predictions
  (job 1)        (job 2)          (job 3)            (job 4)                (job 5)

Each step shows its name, its output live, its duration, its asset checks and its outcome; the run stops at the
first failure (a failed blocking check included) and ends with a summary. Steps are named by asset or by job
(--from finetune = --from finetuned_model). Failed steps are retried with backoff (PIPELINE_RETRIES). The jobs are
idempotent, so a rerun skips work already done. With DAGSTER_HOME set, the run is kept there and shows in the UI
(`dagster dev -m mlplatform.orchestration`). If nothing answers at MLFLASK_URL (a local address), a local MLFlask
is started for the deploy and predict steps, and stopped at the end unless --keep-mlflask is given.
"""

from __future__ import annotations

import sys
import time

from jobs.local_mlflask import local_mlflask
from mlplatform import cli
from mlplatform.launch import Service
from mlplatform.serving.client import MLFlaskClient
from mlplatform.settings import Settings


def _parser(settings: Settings | None):
    p = cli.parser(__doc__)
    p.add_argument("--env-file", action="append", default=[], help="KEY=VALUE file(s) to load, e.g. env/local.env")
    p.add_argument("--from", dest="start", metavar="STEP", help="start at STEP (an asset or a job name)")
    p.add_argument("--only", metavar="STEP", help="run STEP alone")
    cli.flag(p, "--retries", "pipeline_retries", settings, dest="retries")
    p.add_argument("--keep-mlflask", action="store_true", help="leave a locally started MLFlask running")
    p.add_argument(
        "--no-local-mlflask",
        action="store_true",
        help="fail when MLFLASK_URL does not answer, instead of starting a local MLFlask (the demo starts its own)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser(None).parse_args(argv)  # the settings are read below, with the env files
    local: Service | None = None

    def job() -> int:
        nonlocal local
        settings = cli.load_settings("run_pipeline", tuple(args.env_file))
        if args.retries is not None:
            settings = settings.replace(pipeline_retries=args.retries)
        cli.setup_logging(settings, args.verbose)
        from mlplatform.orchestration import runner

        selection = runner.select(args.start, args.only)
        print(
            f"pipeline: {' -> '.join(selection)}  (lake {settings.lake_location}, "
            f"MLflow {settings.mlflowserver_url or settings.mlflow_backend_store_uri})",
            flush=True,
        )
        if runner.NEEDS_MLFLASK & set(selection) and not _mlflask_answers(settings):
            if args.no_local_mlflask:
                print(f"pipeline: error: nothing answers at {settings.mlflask_url}", file=sys.stderr)
                return 1
            local = local_mlflask(settings)
            print(
                f"pipeline: nothing answers at {settings.mlflask_url}; starting a local MLFlask (log: {local.log})",
                flush=True,
            )
            local.start()
        reports = runner.execute(settings, selection, settings.pipeline_retries, runner.instance(settings))
        print("\n" + _summary(reports))
        failed = next((r for r in reports if r.outcome != "ok"), None)
        if failed:
            print(f"pipeline: stopped at {failed.name}: {failed.error or failed.outcome}", file=sys.stderr)
            return 1
        return 0

    started = time.monotonic()
    try:
        code = cli.run(job, "run_pipeline")
    finally:
        if local is not None and not args.keep_mlflask:
            local.stop()  # SIGINT: a graceful stop would wait out this process's keep-alive sockets
        elif local is not None:
            url = local.health_url.removesuffix("/health")
            print(f"pipeline: MLFlask keeps running at {url} (pid {local.process.pid})")
    print(f"pipeline: {'done' if code == 0 else 'failed'} in {time.monotonic() - started:.1f}s")
    return code


def _mlflask_answers(settings: Settings) -> bool:
    return MLFlaskClient.from_settings(settings, timeout=3, retries=1).health()


def _summary(reports) -> str:
    rows = []
    for r in reports:
        passed = sum(ok for _, ok in r.checks)
        checks = f"{passed}/{len(r.checks)} passed" if r.checks else "-"
        tries = f" ({r.attempts} attempts)" if r.attempts > 1 else ""
        rows.append([r.name, r.outcome + tries, f"{r.seconds:.1f}s", checks])
    return cli.table(rows, ["step", "outcome", "time", "checks"])


if __name__ == "__main__":
    sys.exit(main())
