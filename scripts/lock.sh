#!/usr/bin/env bash
# `make lock`: resolve requirements.lock (runtime) and requirements-dev.lock (runtime + tests and tools) from
# pyproject.toml with uv, for Python 3.11 to 3.13 on Linux only (pyproject's [tool.uv] environments: the project
# needs fcntl and gunicorn). torch is left out of the resolution (its PyPI metadata drags in GBs of CUDA packages)
# and pinned on its own line: scripts/install.sh installs it first, from the right index. Its own dependencies,
# read from the CPU wheel installed in the venv (CUDA and triton left out), are resolved and pinned with the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_VERSION="${TORCH_VERSION:-$(sed -n 's/^torch==\([0-9.]*\)  .*/\1/p' requirements.lock)}"
UV="${UV:-${VENV:-.venv}/bin/uv}"
PY="${VENV:-.venv}/bin/python"
override=$(mktemp)
torch_deps=$(mktemp --suffix=.txt)
trap 'rm -f "$override" "$torch_deps"' EXIT
echo "torch; sys_platform == 'never'" >"$override"  # a marker nothing satisfies drops torch from the resolution
"$PY" - >"$torch_deps" <<'PYTHON'
import importlib.metadata as metadata

for requirement in metadata.requires("torch") or []:
    if "extra ==" not in requirement and not requirement.startswith(("nvidia", "triton", "cuda")):
        print(requirement)
PYTHON
[ -s "$torch_deps" ] || { echo "lock: no torch in $PY to read its dependencies from (make install-dev)" >&2; exit 1; }
compile() {  # output, extra flags
  local out=$1; shift
  "$UV" pip compile pyproject.toml "$torch_deps" --universal --python-version 3.11 --override "$override" \
    --no-header --no-annotate -q "$@" -o "$out"
  {
    echo "# Resolved from pyproject.toml by scripts/lock.sh (make lock); do not edit by hand."
    echo "torch==$TORCH_VERSION  # installed first by scripts/install.sh: the CPU wheel unless TORCH_INDEX_URL says otherwise"
    grep -v "sys_platform == 'never'" "$out"  # torch's own dependencies, installed with it
  } >"$out.tmp" && mv "$out.tmp" "$out"
}
rm -f requirements.lock requirements-dev.lock  # uv would keep old pins as preferences
compile requirements.lock --extra all
runtime=$(mktemp)
grep -v '^torch==' requirements.lock >"$runtime"
compile requirements-dev.lock --extra all --extra test -c "$runtime"  # tests install next to the runtime, unchanged
rm -f "$runtime"
echo "lock: torch==$TORCH_VERSION, $(grep -c '==' requirements.lock) runtime and $(grep -c '==' requirements-dev.lock) dev pins"
