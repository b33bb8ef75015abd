"""Job 4, model deployment: make the registry right, then make MLFlask serve it.

By default the best FINISHED run by a validation metric (metrics containing "loss" are minimised) is registered
as a version of MODEL_NAME in the MLflow Model Registry (once: a rerun reuses it), the alias MODEL_ALIAS
(default champion) is pointed at that version, and MLFlask at MLFLASK_URL serves models:/MODEL_NAME@MODEL_ALIAS.
Every MLFlask that serves that alias follows it within MLFLASK_FOLLOW_INTERVAL seconds.

  python jobs/model_deployment.py                 # best run by DEPLOY_METRIC
  python jobs/model_deployment.py --run-id ID     # that run
  python jobs/model_deployment.py --version 3     # rollback: move the alias to version 3
  python jobs/model_deployment.py --dry-run       # say what would change, change nothing

Idempotent: a rerun with nothing new changes nothing and says so.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from mlplatform import cli
from mlplatform.errors import ConfigError
from mlplatform.registry import Registry, maximise
from mlplatform.serving.client import MLFlaskClient
from mlplatform.settings import Settings

log = logging.getLogger("model_deployment")


def _parser(settings: Settings):
    p = cli.parser(__doc__)
    cli.flag(p, "--metric", "deploy_metric", settings, dest="metric")
    cli.flag(p, "--name", "model_name", settings, dest="name")
    cli.flag(p, "--alias", "model_alias", settings, dest="alias")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--run-id", help="deploy this run instead of the best one")
    which.add_argument("--version", type=int, help="point the alias at this registered version (rollback)")
    p.add_argument("--dry-run", action="store_true", help="print what would change, and change nothing")
    p.add_argument("--top", type=int, default=5, help="how many candidates to show (default: 5)")
    return p


def _show_candidates(registry: Registry, metric: str, top: int) -> None:
    settings = registry.settings
    candidates = registry.top_runs(metric, limit=max(1, top))
    if not candidates:
        raise ConfigError(
            f"no FINISHED run in experiment {settings.mlflow_exp_name!r} has the metric {metric!r}; "
            "run jobs/finetune.py first"
        )
    direction = "highest" if maximise(metric) else "lowest"
    rows = [[i + 1, c.run_id[:12], c.run_name, f"{c.metric_value:.4f}"] for i, c in enumerate(candidates)]
    print(f"Top runs by {metric} ({direction} first):")
    print(cli.table(rows, ["#", "run", "name", metric]))


def main(argv: list[str] | None = None) -> int:
    settings, args = cli.start(Path(__file__).stem, _parser, argv)

    def job() -> int:
        registry = Registry(settings)
        if args.run_id is None and args.version is None:
            _show_candidates(registry, args.metric, args.top)
        client = MLFlaskClient.from_settings(settings)
        promotion, served, changed = registry.promote_and_serve(
            client,
            args.name,
            run_id=args.run_id,
            metric=args.metric,
            version=args.version,
            alias=args.alias,
            dry_run=args.dry_run,
        )
        would = "would " if promotion.dry_run else ""
        if promotion.registered:
            print(f"registry: {would}register run {promotion.run_id} as {promotion.name} version {promotion.version}")
        moved = f"{would}moved to" if promotion.alias_moved else "already on"
        print(f"registry: {promotion.name}@{promotion.alias} {moved} version {promotion.version}")
        if promotion.dry_run:
            now = f"serves version {served['version']} of {served['model_uri']}" if served else "does not serve it"
            print(f"MLFlask at {client.base_url} {now}; would serve {promotion.ref.uri}")
            return 0
        state = "now serves" if changed else "already serves"
        print(
            f"MLFlask at {client.base_url} {state} {served['name']} = {served['model_uri']} "
            f"(version {served['version']}, run {served['run_id']})"
        )
        return 0

    return cli.run(job, Path(__file__).stem)


if __name__ == "__main__":
    sys.exit(main())
