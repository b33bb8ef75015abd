"""Pipeline runner: run the five jobs in order, each as its own process with the same environment.

  data_preparation -> clean_data -> finetune -> model_deployment -> interface_handler

Each step shows its name, duration and outcome; the runner stops at the first failure with that step's error
and exit code. The jobs are idempotent, so a rerun skips work already done. If nothing answers at MLFLASK_URL
(a local address), a local MLFlask is started for the deploy and check steps, and stopped at the end unless
--keep-mlflask is given.
"""

from __future__ import annotations

import sys
import time

from mlplatform import cli
from mlplatform.client import MLFlaskClient
from mlplatform.envfile import read_env_file
from mlplatform.pipeline import NEEDS_MLFLASK, STEPS, LocalMLFlask, run_step, select_steps
from mlplatform.settings import Settings, environ


def _parser(settings: Settings):
    p = cli.parser(__doc__)
    p.add_argument("--env-file", action="append", default=[], help="KEY=VALUE file(s) to load, e.g. env/local.env")
    p.add_argument("--from", dest="start", metavar="STEP", help=f"start at STEP ({', '.join(STEPS)})")
    p.add_argument("--only", metavar="STEP", help="run STEP alone")
    cli.flag(p, "--retries", "pipeline_retries", settings, dest="retries")
    p.add_argument("--keep-mlflask", action="store_true", help="leave a locally started MLFlask running")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser(cli.load_settings("run_pipeline")).parse_args(argv)
    local: LocalMLFlask | None = None

    def job() -> int:
        nonlocal local
        files = {"LOG_LEVEL": "DEBUG"} if args.verbose else {}
        for path in args.env_file:
            files.update(read_env_file(path))
        steps = select_steps(args.start, args.only)
        settings = Settings.from_env({**environ(), **files})
        env = environ(files)
        print(
            f"pipeline: {' -> '.join(steps)}  (lake {settings.lake_location}, "
            f"MLflow {settings.mlflowserver_url or settings.mlflow_backend_store_uri})",
            flush=True,
        )
        results = []
        for index, name in enumerate(steps, 1):
            print(f"\n== [{index}/{len(steps)}] {name}", flush=True)
            if name in NEEDS_MLFLASK and local is None and not _mlflask_answers(settings):
                local = LocalMLFlask(settings, env)
                print(
                    f"pipeline: nothing answers at {settings.mlflask_url}; starting a local MLFlask "
                    f"(log: {local.log_path})",
                    flush=True,
                )
                local.start()
            result = run_step(name, env, max(0, args.retries))
            results.append(result)
            outcome = "ok" if result.returncode == 0 else f"FAILED (exit {result.returncode})"
            tries = f", {result.attempts} attempts" if result.attempts > 1 else ""
            print(f"== {name}: {outcome} in {result.seconds:.1f}s{tries}", flush=True)
            if result.returncode != 0:
                print(f"pipeline: stopped at {name}: {result.last_error}", file=sys.stderr)
                _summary(results)
                return result.returncode
        _summary(results)
        return 0

    started = time.monotonic()
    try:
        code = cli.run(job, "run_pipeline")
    finally:
        if local is not None and not args.keep_mlflask:
            local.stop()
        elif local is not None:
            print(f"pipeline: MLFlask keeps running at {local.url} (pid {local.process.pid})")
    print(f"pipeline: {'done' if code == 0 else 'failed'} in {time.monotonic() - started:.1f}s")
    return code


def _mlflask_answers(settings: Settings) -> bool:
    return MLFlaskClient.from_settings(settings, timeout=3, retries=1).health()


def _summary(results) -> None:
    print(
        "\n"
        + cli.table(
            [[r.name, "ok" if r.returncode == 0 else f"exit {r.returncode}", f"{r.seconds:.1f}s"] for r in results],
            ["step", "outcome", "time"],
        )
    )


if __name__ == "__main__":
    sys.exit(main())
