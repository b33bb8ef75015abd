"""Job 4, model deployment: pick the best FINISHED run by a validation metric and deploy it to MLFlask.

Metrics containing "loss" are minimised, all others maximised. The chosen run is registered in the MLflow
Model Registry under MODEL_NAME with the alias `champion`, then deployed to MLFlask at MLFLASK_URL (with
MLFLASK_TOKEN as a bearer token when set). If that run is already deployed under that name, nothing is done.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from mlplatform import cli
from mlplatform.client import MLFlaskClient
from mlplatform.errors import ConfigError
from mlplatform.names import NAME_RULE, is_valid_name
from mlplatform.promotion import ALIAS, register_champion
from mlplatform.runs import METRIC_RE, maximise, top_runs
from mlplatform.settings import Settings

log = logging.getLogger("model_deployment")


def _parser(settings: Settings):
    p = cli.parser(__doc__)
    cli.flag(p, "--metric", "deploy_metric", settings, dest="metric")
    cli.flag(p, "--name", "model_name", settings, dest="name")
    p.add_argument("--top", type=int, default=5, help="how many candidates to show (default: 5)")
    return p


def main(argv: list[str] | None = None) -> int:
    settings = cli.load_settings(Path(__file__).stem)
    args = _parser(settings).parse_args(argv)
    cli.setup_logging()

    def job() -> int:
        if not is_valid_name(args.name):
            raise ConfigError(f"MODEL_NAME={args.name!r} must be {NAME_RULE}")
        if not METRIC_RE.fullmatch(args.metric):
            raise ConfigError(f"DEPLOY_METRIC={args.metric!r} is not a metric name")
        candidates = top_runs(settings, args.metric, limit=max(1, args.top))
        if not candidates:
            raise ConfigError(
                f"no FINISHED run in experiment {settings.mlflow_exp_name!r} has the metric "
                f"{args.metric!r}; run jobs/finetune.py first"
            )
        direction = "highest" if maximise(args.metric) else "lowest"
        rows = [[i + 1, c.run_id[:12], c.run_name, f"{c.metric_value:.4f}"] for i, c in enumerate(candidates)]
        print(f"Top runs by {args.metric} ({direction} first):")
        print(cli.table(rows, ["#", "run", "name", args.metric]))
        best = candidates[0]

        client = MLFlaskClient.from_settings(settings)
        deployed = {m["name"]: m for m in client.models()}
        if deployed.get(args.name, {}).get("run_id") == best.run_id:
            print(f"{args.name} already serves run {best.run_id}; nothing to do")
            return 0
        version = register_champion(settings, best, args.name)
        log.info("registered %s version %d with alias %s", args.name, version, ALIAS)
        record = client.deploy(args.name, run_id=best.run_id, metric=args.metric)
        print(
            f"deployed {record['name']} <- run {record['run_id']} ({args.metric}={record['metric_value']:.4f}) "
            f"at {client.base_url}; registry: {args.name} v{version} @{ALIAS}"
        )
        return 0

    return cli.run(job, Path(__file__).stem)


if __name__ == "__main__":
    sys.exit(main())
