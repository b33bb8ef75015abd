"""Job 4, model deployment: a challenger replaces the champion only if it wins on the same data and passes the checks.

The best PROMOTION_CANDIDATES FINISHED runs by DEPLOY_METRIC (or the run given) and the current champion are
scored on the same rows: the lake's current clean/ test split, with the backend MLFlask serves. The best
candidate is registered as a version of MODEL_NAME with the alias CHALLENGER_ALIAS, served by MLFlask as
MODEL_NAME-challenger, and job 5's behavioural checks run against it. Then the alias MODEL_ALIAS (champion)
moves to it only if the checks passed and it beats the champion by PROMOTION_MIN_GAIN; a model trained on
synthetic data never replaces one trained on real data without --force. Every MLFlask that serves the alias
follows it within MLFLASK_FOLLOW_INTERVAL seconds.

  python jobs/model_deployment.py                 # the gate over the best runs by DEPLOY_METRIC
  python jobs/model_deployment.py --run-id ID     # the gate for that run
  python jobs/model_deployment.py --version 3     # rollback: move the alias to version 3 (no gate)
  python jobs/model_deployment.py --dry-run       # score and say what would change, change nothing

Exit status: 0 when the challenger was promoted or the champion kept (it scored better, or the data rule held),
3 when the challenger failed the behavioural checks, 1 on errors. A rerun with nothing new changes nothing.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from mlplatform import cli
from mlplatform.errors import ConfigError
from mlplatform.promotion.gate import APPROVED, FAILED_CHECKS, PROMOTED, GateResult, PromotionGate
from mlplatform.promotion.serve import promote_and_serve
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
    p.add_argument(
        "--force", action="store_true", help="promote without the gain and real-over-synthetic rules (checks still run)"
    )
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
        client = MLFlaskClient.from_settings(settings)
        if args.version is not None:  # a rollback is a person's decision: no gate
            promotion, served, changed = promote_and_serve(
                registry, client, args.name, version=args.version, alias=args.alias, dry_run=args.dry_run
            )
            return _report_serving(client, promotion, served, changed)
        if args.run_id is None:
            _show_candidates(registry, args.metric, args.top)
        gate = PromotionGate(registry, client, settings.replace(deploy_metric=args.metric, model_alias=args.alias))
        result = gate.run(args.name, run_id=args.run_id, force=args.force, dry_run=args.dry_run)
        _report_gate(args.name, result)
        if args.dry_run and result.decision == APPROVED:
            promotion, served, changed = promote_and_serve(
                registry, client, args.name, run_id=result.challenger.run.run_id, alias=args.alias, dry_run=True
            )
            return _report_serving(client, promotion, served, changed)
        if result.decision == FAILED_CHECKS:
            print(f"model_deployment: {result.reason}; {args.name}@{args.alias} was not moved", file=sys.stderr)
        if result.promotion is None and result.served is not None:  # kept: the best run is already the champion
            print(f"registry: {args.name}@{args.alias} already on version {result.champion.version}")
            print(f"MLFlask at {client.base_url} {'now serves' if result.changed else 'already serves'} {args.name}")
        if result.promotion is not None:
            _report_serving(client, result.promotion, result.served, result.changed)
        return result.exit_code

    return cli.run(job, Path(__file__).stem)


def _report_gate(name: str, result: GateResult) -> None:
    if result.eval_set is not None:
        rows = len(result.eval_set.texts)
        print(f"\nScored on the same data: {rows} rows of clean/ test ({result.eval_set.name}), by {result.metric}:")
        print(cli.table(result.rows(), ["role", "version", "run", "data", result.metric, "seconds"]))
    if result.registered:
        print(f"registry: register run {result.challenger.run.run_id} as {name} version {result.registered}")
    if result.checks:
        passed = sum(c.passed for c in result.checks)
        print(f"checks on {name}-challenger: {passed} of {len(result.checks)} passed")
        for check in result.checks:
            print(f"  {'PASS' if check.passed else 'FAIL'}  {check.name}: {check.detail}")
    verdict = {PROMOTED: "promote the challenger", APPROVED: "would promote the challenger"}
    print(f"gate: {verdict.get(result.decision, 'keep the champion')}: {result.reason}")


def _report_serving(client, promotion, served, changed) -> int:
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


if __name__ == "__main__":
    sys.exit(main())
