#!/usr/bin/env bash
# MLServer's MLflow runtime for benchmarks/serve_bench.py, in its own venv (.venv-mlserver): MLServer 1.7 pins
# fastapi<0.116, which the project's lock (MLflow's server, Dagster) cannot share. It holds what the servable's
# requirements.txt names (no torch), so it serves the registered pyfunc as any MLflow runtime would.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${MLSERVER_VENV:-.venv-mlserver}
PYTHON=${PYTHON:-python3}
# The servable's runtime versions as the project's venv has them (what job 3 wrote into requirements.txt).
pin() { "${PROJECT_VENV:-.venv}/bin/python" -c "import importlib.metadata as m; print('$1==' + m.version('$1'))"; }
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check \
  mlserver==1.7.1 mlserver-mlflow==1.7.1 "$(pin mlflow)" "$(pin onnxruntime)" "$(pin tokenizers)" \
  "$(pin beautifulsoup4)" "$(pin numpy)" "$(pin pandas)"
echo "MLServer ready in $VENV"
