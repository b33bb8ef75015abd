#!/usr/bin/env bash
# `make demo`: the five jobs on the embedded defaults (env/local.env), then the MLflow UI, MLFlask and MLDash,
# until Ctrl-C, which stops everything this script started. Variables already set win over env/local.env.
set -euo pipefail
cd "$(dirname "$0")/.."

while IFS='=' read -r key value; do
  [ -n "${!key+x}" ] || export "$key=$value"
done < <(grep -E '^[A-Z_][A-Z0-9_]*=' env/local.env)
# The quick profile: minutes on 2 CPU cores.
export TRAIN_SAMPLES="${TRAIN_SAMPLES:-2000}" TEST_SAMPLES="${TEST_SAMPLES:-500}" MAX_LENGTH="${MAX_LENGTH:-64}"
export EPOCHS="${EPOCHS:-1}" MLFLASK_STORE="${MLFLASK_STORE:-mlflask_store}"
MLFLOW_UI_PORT="${MLFLOW_UI_PORT:-5000}"
export MLFLASK_PORT="${MLFLASK_URL##*:}" MLDASH_PORT="${MLDASH_PORT:-8050}"
export MLFLOW_UI_URL="${MLFLOW_UI_URL:-http://127.0.0.1:$MLFLOW_UI_PORT}"

pids=()
stop() {
  trap - EXIT INT TERM
  [ ${#pids[@]} -eq 0 ] || { echo "demo: stopping ${#pids[@]} services"; kill "${pids[@]}" 2>/dev/null || true; wait || true; }
}
trap stop EXIT INT TERM

wait_for() {  # url, name: a bounded wait
  for _ in $(seq 1 240); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "demo: $2 did not start; see $2.log" >&2; return 1
}

python -m apps.mlflask >mlflask.log 2>&1 & pids+=($!)
wait_for "$MLFLASK_URL/health" mlflask
python jobs/run_pipeline.py

python -m mlflow ui --host 127.0.0.1 --port "$MLFLOW_UI_PORT" --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" \
  >mlflow-ui.log 2>&1 & pids+=($!)
python -m apps.mldash >mldash.log 2>&1 & pids+=($!)
wait_for "http://127.0.0.1:$MLFLOW_UI_PORT/health" mlflow-ui
wait_for "http://127.0.0.1:$MLDASH_PORT/" mldash
cat <<MSG

demo: everything is up (Ctrl-C stops it all)
  MLflow UI  $MLFLOW_UI_URL
  MLFlask    $MLFLASK_URL   (try: curl -s $MLFLASK_URL/models)
  MLDash     http://127.0.0.1:$MLDASH_PORT
MSG
wait
