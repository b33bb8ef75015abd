"""Serving a registry reference: resolve it in the configured MLflow, download, verify, switch atomically.

A deployment is a served name plus `models:/<name>@<alias>` (followed when the alias moves) or
`models:/<name>/<version>` (pinned). `state.json` caches what each name resolved to; the registry is the truth.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid

from apps.mlflask.errors import ApiError
from apps.mlflask.loaded import LoadedModels
from apps.mlflask.store import Busy, ModelStore, now
from mlplatform.names import NAME_RULE, ModelRef, is_valid_name
from mlplatform.registry import Registry, RunSummary
from mlplatform.registry.promotion import Resolved
from mlplatform.serving.loader import fetch

log = logging.getLogger(__name__)
_KEY_PARAMS = ("pretrained_model", "learning_rate", "epochs", "batch_size", "max_length", "train_size")
_SMOKE_TEXTS = ["smoke test", "A brilliant, moving film."]


def _request_id() -> str | None:
    """The X-Request-ID of the HTTP request behind this action, if any (the follower acts on its own)."""
    from flask import g, has_request_context

    return g.get("request_id") if has_request_context() else None


def check_name(name) -> str:
    if not is_valid_name(name):
        raise ApiError(422, f"model name must be {NAME_RULE}")
    return name


def _record(name: str, ref: ModelRef, resolved: Resolved, run: RunSummary | None, quantized: bool) -> dict:
    return {
        "name": name,
        "model_uri": ref.uri,
        "registered_model": ref.name,
        "alias": ref.alias,
        "version": resolved.version,
        "run_id": resolved.run_id,
        "run_name": run.run_name if run else "",
        "experiment_id": run.experiment_id if run else "",
        "metrics": {k: v for k, v in (run.metrics if run else {}).items() if k.startswith(("val_", "test_"))},
        "params": {k: run.params[k] for k in _KEY_PARAMS if run and k in run.params},
        "card": resolved.description,
        "tags": {k: v for k, v in resolved.tags.items() if k in ("data_source", "synthetic", "base_model")},
        "deployed_at": now(),
        "deploy_id": uuid.uuid4().hex,
        "quantized": quantized,
        "follow_error": None,
    }


def deploy(
    registry: Registry,
    store: ModelStore,
    models: LoadedModels,
    name: str,
    ref: ModelRef,
    action: str = "deploy",
    if_changed: bool = False,
) -> dict:
    """Resolve `ref`, download and verify that version, then switch `name` to it in one atomic step.

    Any failure before the switch leaves the deployed set exactly as it was; in-flight requests finish on the
    model they started on. `if_changed` (the alias follower's): when `name` already serves that version of `ref`,
    nothing happens. Each worker follows; one that decided on a state read before another worker's deploy would
    otherwise deploy the same version again, under a new deploy id that every worker then reloads (and `/ready`
    answers 503 meanwhile: the flapping of #33).
    """
    check_name(name)
    started = time.monotonic()
    try:
        with store.name_lock(name):
            resolved = registry.resolve(ref)
            current = store.read_state().get(name) if if_changed else None
            if current and current.get("model_uri") == ref.uri and current.get("version") == resolved.version:
                return current
            run = registry.describe_run(resolved.run_id)
            staged = store.new_staging()
            try:
                model_dir = fetch(registry, resolved.version_uri, staged, registry.settings.mlflask_backend)
                try:
                    servable = models.load_dir(model_dir)
                    servable.predict(_SMOKE_TEXTS)
                except Exception as exc:  # noqa: BLE001 - whatever the files hold, the served set stays as it was
                    raise ApiError(
                        422, f"{resolved.version_uri} is not a loadable text classifier: {type(exc).__name__}"
                    ) from None
                record = _record(name, ref, resolved, run, servable.quantized)
                record["backend"] = servable.backend
                record["backend_note"] = servable.backend_note
                previous = models.adopt(lambda: store.install(name, record, model_dir), record, servable)
            finally:
                shutil.rmtree(staged, ignore_errors=True)
    except Busy:
        raise ApiError(409, f"a deploy or removal of {name!r} is already in progress") from None
    store.log(
        action,
        request_id=_request_id(),
        model=name,
        model_uri=ref.uri,
        version=record["version"],
        run_id=record["run_id"],
        replaced_version=(previous or {}).get("version"),
        backend=record["backend"],
        backend_note=record["backend_note"][:300],
        seconds=round(time.monotonic() - started, 2),
    )
    log.info("%s %s: %s -> version %s (run %s)", action, name, ref.uri, record["version"], record["run_id"])
    return record


def remove(store: ModelStore, models: LoadedModels, name: str) -> dict:
    check_name(name)
    try:
        with store.name_lock(name):
            record = store.remove(name)
            if record is not None:
                models.release(record["deploy_id"])
    except Busy:
        raise ApiError(409, f"a deploy or removal of {name!r} is already in progress") from None
    if record is None:
        raise ApiError(404, f"model {name!r} is not deployed")
    store.log("remove", request_id=_request_id(), model=name, run_id=record["run_id"], version=record.get("version"))
    for kind in ("shadow", "canary"):  # its arms go with it
        if record.get(kind) and f"{name}.{kind}" in store.read_state():
            remove(store, models, f"{name}.{kind}")
    return record
