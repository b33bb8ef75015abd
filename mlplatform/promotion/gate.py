"""The promotion gate: a new model replaces the champion only after it wins on the same data and passes the checks.

1. The candidates (the best PROMOTION_CANDIDATES runs by DEPLOY_METRIC, or the run asked for) and the current
   champion are scored on the same rows (`scoring.py`); the best candidate becomes the challenger.
2. The challenger is registered, gets CHALLENGER_ALIAS, and is served under a staging name, where job 5's
   behavioural checks run against it.
3. The champion alias moves only if the checks pass, the challenger beats the champion by PROMOTION_MIN_GAIN,
   and a model trained on synthetic data is not about to replace one trained on real data (unless forced).

Every decision is recorded on the challenger's version (tags `gate.*`) and in an MLflow run of its own (in the
experiment `<MLFLOW_EXP_NAME>-gate`) that logs each contender's scores against its logged model and the dataset.
Job 4 and MLDash promote through `PromotionGate.run`; the Dagster pipeline splits it into `decide`
(challenger_evaluation) and `apply_version` (champion_deployment).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from mlplatform.data.pins import pin_generation
from mlplatform.errors import PlatformError
from mlplatform.names import ModelRef
from mlplatform.promotion.scoring import EvalSet, better, load_eval_set, score_model, shared_metric
from mlplatform.promotion.serve import promote_and_serve
from mlplatform.registry.modelcard import is_synthetic
from mlplatform.registry.promotion import Promotion
from mlplatform.registry.runs import RunNotFound, RunSummary
from mlplatform.registry.tracking import NotInTracking, mlflow_errors
from mlplatform.serving.behaviour import Check, check_interface

log = logging.getLogger(__name__)
EVALUATION_KIND = "promotion_gate"
GATE_EXPERIMENT_SUFFIX = "-gate"
PROMOTED, KEPT, FAILED_CHECKS = "promoted", "kept_champion", "failed_checks"
APPROVED = "approved"  # passed every rule and check; the champion alias moves in `apply`


class GateRefused(PlatformError):
    """The challenger failed the behavioural checks: the champion stays."""


@dataclass
class Contender:
    role: str  # "champion" or "candidate"
    run: RunSummary
    version: str | None
    score: float
    scores: dict
    backend: str
    seconds: float

    @property
    def synthetic(self) -> bool:
        return is_synthetic(self.run)


@dataclass
class GateResult:
    decision: str
    reason: str
    metric: str  # the shared score: f1, accuracy or loss
    eval_set: EvalSet | None
    contenders: list[Contender] = field(default_factory=list)
    challenger: Contender | None = None
    champion: Contender | None = None
    checks: list[Check] = field(default_factory=list)
    promotion: Promotion | None = None
    served: dict | None = None
    changed: bool = False
    registered: str | None = None  # the version registered for the challenger here, if any
    evaluation_run_id: str = ""

    @property
    def exit_code(self) -> int:
        return 3 if self.decision == FAILED_CHECKS else 0

    def rows(self) -> list[list]:
        """The comparison, best first: role, version, run, data, the shared score, seconds."""
        chosen = self.challenger.run.run_id if self.challenger else None
        rows = []
        for c in self.contenders:
            role = "challenger" if c.run.run_id == chosen else c.role
            data = "synthetic" if c.synthetic else "real"
            rows.append([role, c.version or "-", c.run.run_id[:12], data, f"{c.score:.4f}", f"{c.seconds:.1f}"])
        return rows


class PromotionGate:
    """Challenger against champion (see the module's docstring) for the registry's model `name`."""

    def __init__(self, registry, mlflask, settings=None):
        self.registry = registry
        self.mlflask = mlflask
        self.settings = settings or registry.settings

    def run(self, name: str, run_id: str | None = None, force: bool = False, dry_run: bool = False) -> GateResult:
        """Decide, then move the champion alias if the challenger was approved (job 4 and MLDash)."""
        result = self.decide(name, run_id, force, dry_run)
        return self.apply(name, result) if result.decision == APPROVED and not dry_run else result

    def decide(self, name: str, run_id: str | None = None, force: bool = False, dry_run: bool = False) -> GateResult:
        """Everything up to the champion alias: score, register and stage the challenger, run the checks."""
        s = self.settings
        metric = shared_metric(s.deploy_metric)
        if not dry_run:
            self.mlflask.models()  # an unreachable MLFlask fails now, not after the scoring
        candidates = self._candidates(run_id)
        champion_ref = ModelRef(name, alias=s.model_alias)
        champion = self._champion(champion_ref)
        rivals = [c for c in candidates if not champion or c.run_id != champion.run.run_id]
        if champion and (not rivals or candidates[0].run_id == champion.run.run_id):  # nothing new leads
            served, changed = self._serve_champion(name, champion, dry_run)
            why = f"run {champion.run.run_id} is already the champion (version {champion.version})"
            return GateResult(KEPT, why, metric, None, [champion], champion=champion, served=served, changed=changed)
        eval_set = load_eval_set(s)
        contenders = [self._score(c, "candidate", c.model_uri, eval_set, metric) for c in rivals]
        if champion:
            uri = f"models:/{name}/{champion.version}"
            contenders.append(self._score(champion.run, "champion", uri, eval_set, metric, champion.version))
            champion = contenders[-1]
        contenders.sort(key=lambda c: c.score, reverse=metric != "loss")
        challenger = max(
            (c for c in contenders if c.role == "candidate"),
            key=lambda c: c.score if metric != "loss" else -c.score,
        )
        result = GateResult("", "", metric, eval_set, contenders, challenger, champion)
        refusal = self._refusal(challenger, champion, metric, force)
        if dry_run:
            result.decision, result.reason = (KEPT, refusal) if refusal else (APPROVED, "would stage and check it")
            return result
        self._record_scores(name, result)
        staged = self._register_challenger(name, challenger)
        challenger.version, result.registered = staged.version, staged.version if staged.registered else None
        for contender in (challenger, champion):  # the rows they were scored on stay in the lake
            if contender is not None:
                pin_generation(s, name, contender.version, eval_set.generation, evaluation=True)
        if refusal:
            result.decision, result.reason = KEPT, refusal
        else:
            try:
                result.checks = self._stage_and_check(name, challenger)
            except BaseException:
                self.registry.restore_alias(staged)  # an error, not a verdict: the aliases stay as they were
                raise
            failed = [c for c in result.checks if not c.passed]
            if failed:
                result.decision = FAILED_CHECKS
                result.reason = f"{len(failed)} of {len(result.checks)} behavioural checks failed on the challenger"
            else:
                result.decision, result.reason = APPROVED, self._why_promoted(challenger, champion, metric)
        self._tag_decision(name, result)
        if result.decision != APPROVED:  # a refused challenger keeps no alias a canary could follow
            self.registry.drop_alias(name, s.challenger_alias, challenger.version)
        log.info("gate on %s: %s (%s)", name, result.decision, result.reason)
        return result

    def apply(self, name: str, result: GateResult) -> GateResult:
        """Move the champion alias to an approved challenger and make MLFlask serve it."""
        seen = result.champion.version if result.champion else None
        result.promotion, result.served, result.changed = promote_and_serve(
            self.registry,
            self.mlflask,
            name,
            version=result.challenger.version,
            alias=self.settings.model_alias,
            expected=seen,  # compare-and-set: a promotion made since the scoring stands
        )
        result.decision = PROMOTED
        self._tag_decision(name, result)
        return result

    def apply_version(self, name: str, version: str) -> tuple[Promotion, dict | None, bool]:
        """The same for a challenger version that `decide` approved in another step (the Dagster pipeline)."""
        tags = self.registry.client.get_model_version(name, version).tags
        if tags.get("gate.decision") not in (APPROVED, PROMOTED):
            raise GateRefused(f"{name} version {version} was not approved by the gate ({tags.get('gate.decision')})")
        seen = tags.get("gate.champion_version", "none")
        promotion, served, changed = promote_and_serve(
            self.registry,
            self.mlflask,
            name,
            version=version,
            alias=self.settings.model_alias,
            expected=None if seen == "none" else seen,  # the champion the gate scored it against, or nothing
        )
        with mlflow_errors("MLflow registry"):
            self.registry.client.set_model_version_tag(name, version, "gate.decision", PROMOTED)
        return promotion, served, changed

    def _candidates(self, run_id: str | None) -> list[RunSummary]:
        s = self.settings
        if run_id:
            return [self.registry.get_run(run_id, s.deploy_metric)]
        runs = self.registry.top_runs(s.deploy_metric, limit=s.promotion_candidates)
        if not runs:
            raise RunNotFound(
                f"no FINISHED run in experiment {s.mlflow_exp_name!r} has the metric {s.deploy_metric!r}; "
                "run jobs/finetune.py first"
            )
        return runs

    def _champion(self, ref: ModelRef) -> Contender | None:
        try:
            resolved = self.registry.resolve(ref)
        except NotInTracking:
            return None
        run = self.registry.describe_run(resolved.run_id)
        if run is None:  # its run was deleted: the version and its model are still there, so it is still scored
            log.warning(
                "%s version %s: run %s is gone; scored by its version", ref.name, resolved.version, resolved.run_id
            )
            source = {"dataset_source": resolved.tags.get("data_source", "")}  # the version keeps what the run said
            run = RunSummary(resolved.run_id, "(run deleted)", "", None, None, {}, {}, 0, source)
        return Contender("champion", run, resolved.version, float("nan"), {}, "", 0.0)

    def _score(
        self, run: RunSummary, role: str, uri: str, eval_set: EvalSet, metric: str, version: str | None = None
    ) -> Contender:
        scored = score_model(self.registry, uri, eval_set)
        return Contender(role, run, version, scored.scores[metric], scored.scores, scored.backend, scored.seconds)

    def _refusal(self, challenger: Contender, champion: Contender | None, metric: str, force: bool) -> str | None:
        """Why the challenger may not replace the champion, before any check runs; None when it may."""
        if champion is None or force:
            return None
        reasons = []
        gain = better(metric, challenger.score, champion.score)
        if gain < self.settings.promotion_min_gain:
            reasons.append(
                f"the champion (version {champion.version}) scores {champion.score:.4f} {metric} on the shared set, "
                f"the challenger {challenger.score:.4f}: a gain of {gain:+.4f}, below PROMOTION_MIN_GAIN="
                f"{self.settings.promotion_min_gain:g}"
            )
        if challenger.synthetic and not champion.synthetic:
            reasons.append(
                f"the challenger (run {challenger.run.run_id}) was trained on synthetic data and the champion on "
                "real data (--force promotes it anyway)"
            )
        return "; ".join(reasons) or None

    def _why_promoted(self, challenger: Contender, champion: Contender | None, metric: str) -> str:
        if champion is None:
            return "no champion yet; the challenger passed the checks"
        gain = better(metric, challenger.score, champion.score)
        return f"{metric} {challenger.score:.4f} against {champion.score:.4f} ({gain:+.4f}), checks passed"

    def _register_challenger(self, name: str, challenger: Contender) -> Promotion:
        return self.registry.promote(name, run_id=challenger.run.run_id, alias=self.settings.challenger_alias)

    def _stage_and_check(self, name: str, challenger: Contender) -> list[Check]:
        """Serve the challenger alias under `<name>-challenger` and run job 5's behavioural checks on it."""
        staging = f"{name}-{self.settings.challenger_alias}"
        self.mlflask.deploy(staging, model_uri=ModelRef(name, alias=self.settings.challenger_alias).uri)
        try:
            return check_interface(self.mlflask, staging, texts=[]).checks
        finally:
            self.mlflask.remove(staging)

    def _serve_champion(self, name: str, champion: Contender, dry_run: bool) -> tuple[dict | None, bool]:
        _, served, changed = promote_and_serve(
            self.registry,
            self.mlflask,
            name,
            version=champion.version,
            alias=self.settings.model_alias,
            dry_run=dry_run,
        )
        return served, changed

    def _record_scores(self, name: str, result: GateResult) -> None:
        """One MLflow run per decision: each contender's scores, linked to its logged model and the dataset."""
        registry, eval_set = self.registry, result.eval_set
        with mlflow_errors("MLflow"):
            experiment_id = registry.ensure_experiment(GATE_EXPERIMENT_SUFFIX)
            run = registry.client.create_run(
                experiment_id,
                run_name=f"gate {name} {eval_set.name}",
                tags={"mlplatform.kind": EVALUATION_KIND, "model_name": name, "dataset_digest": eval_set.digest},
            )
            run_id = run.info.run_id
            registry.client.log_param(run_id, "dataset_generation", eval_set.generation)
            registry.client.log_param(run_id, "eval_rows", len(eval_set.texts))
            for step, contender in enumerate(result.contenders):
                model_id = registry.logged_model_id(contender.run.run_id)
                for key, value in contender.scores.items():
                    registry.client.log_metric(
                        run_id,
                        f"gate_{key}",
                        value,
                        step=step,
                        dataset_name=eval_set.name,
                        dataset_digest=eval_set.digest[:36],
                        model_id=model_id,
                    )
            registry.client.set_terminated(run_id)
        result.evaluation_run_id = run_id

    def _tag_decision(self, name: str, result: GateResult) -> None:
        c, champion = result.challenger, result.champion
        tags = {
            "gate.decision": result.decision,
            "gate.reason": result.reason[:500],
            "gate.metric": result.metric,
            "gate.dataset_digest": result.eval_set.digest,
            "gate.score": f"{c.score:.6f}",
            "gate.champion_version": champion.version if champion else "none",
            "gate.champion_score": f"{champion.score:.6f}" if champion else "none",
            "gate.evaluation_run": result.evaluation_run_id,
        }
        with mlflow_errors("MLflow registry"):
            for key, value in tags.items():
                self.registry.client.set_model_version_tag(name, c.version, key, value)
