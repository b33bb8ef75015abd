#!/usr/bin/env bash
# `make install` / `make install-dev`: a virtual environment (VENV, default .venv) with the right torch and the lock.
#   scripts/install.sh runtime|dev
# torch comes first: the CPU wheel from PyTorch's CPU index when that index answers within a few seconds (a normal
# machine without an NVIDIA GPU), else the pinned release from the configured index (PyPI, or a local mirror).
# Override with TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cu128 for CUDA, or "pypi" for plain PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-runtime}
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
CPU_INDEX=https://download.pytorch.org/whl/cpu
lock=requirements.lock
[ "$kind" = dev ] && lock=requirements-dev.lock
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1

if ! "$PYTHON" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] <= (3, 13)))'; then
  echo "install: $("$PYTHON" --version 2>&1) found; this project needs Python 3.11 to 3.13 (set PYTHON=python3.12, say)" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    echo "install: '$PYTHON -m venv' failed: the venv module is missing." >&2
    echo "  On Debian/Ubuntu: sudo apt-get install python3-venv (or python3.X-venv for your version)" >&2
    exit 1
  fi
  echo "install: created $VENV ($("$VENV/bin/python" --version))"
fi
pip=("$VENV/bin/python" -m pip)
stamp="$VENV/.installed-$kind"
if [ -f "$stamp" ] && [ "$stamp" -nt "$lock" ] && [ "$stamp" -nt pyproject.toml ]; then
  exit 0  # up to date with the lock
fi

torch=$(sed -n 's/^\(torch==[0-9.]*\)  .*/\1/p' requirements.lock)
have=$("$VENV/bin/python" -c 'import importlib.metadata as m; print("torch==" + m.version("torch").split("+")[0])' 2>/dev/null || true)
if [ "$have" != "$torch" ]; then
  index=${TORCH_INDEX_URL:-}
  if [ -z "$index" ]; then
    if command -v nvidia-smi >/dev/null 2>&1; then
      index=pypi  # PyPI's Linux wheel is the CUDA build
    elif curl -fsS --max-time 5 -o /dev/null "$CPU_INDEX/torch/" 2>/dev/null; then
      index=$CPU_INDEX
    else
      index=pypi
      echo "install: $CPU_INDEX does not answer; installing $torch from the configured index"
    fi
  fi
  echo "install: $torch from ${index/pypi/the configured index (PyPI)}"
  if [ "$index" = pypi ]; then
    "${pip[@]}" install -q --timeout 30 "$torch"
  else
    "${pip[@]}" install -q --timeout 30 "$torch" --index-url "$index" --extra-index-url https://pypi.org/simple
  fi
fi
echo "install: $lock into $VENV"
"${pip[@]}" install -q -r "$lock"
"${pip[@]}" install -q --no-deps -e .
touch "$stamp"
