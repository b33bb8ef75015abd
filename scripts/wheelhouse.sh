#!/usr/bin/env bash
# docker/wheels/: a wheel for every package of requirements.lock (torch included), plus moto's S3 server (docker/s3/wheels/), filled by
# this machine's pip (its index, its mirror, its cache). The Dockerfile installs from it with no index, so an image
# builds where pip inside a container reaches nothing.
#   scripts/wheelhouse.sh            # uses $VENV (default .venv) for pip
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
out=docker/wheels
mkdir -p "$out"
moto="moto[server]==$(sed -n 's/^moto==\([0-9.]*\).*/\1/p' requirements-dev.lock)"
stamp="$out/.complete"
if [ -f "$stamp" ] && [ "$stamp" -nt requirements.lock ] && [ "$stamp" -nt requirements-dev.lock ]; then
  exit 0
fi
echo "wheelhouse: requirements.lock into $out, $moto into docker/s3/wheels"
# Sdists are built into wheels here, once, so the image build needs no compiler and no index.
quiet() { grep -v "is ignored: it is neither a file nor a directory" >&2 || true; }  # this machine's pip setup
# The lock's pins for the image's Python (Debian bookworm's 3.11.2 by default), which need not be this one's.
target=$(mktemp)
trap 'rm -f "$target"' EXIT
"$VENV/bin/python" - "${IMAGE_PYTHON:-3.11.2}" requirements.lock > "$target" <<'PY'
import sys
from packaging.requirements import Requirement

env = {"python_full_version": sys.argv[1], "python_version": sys.argv[1].rsplit(".", 1)[0], "sys_platform": "linux",
       "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix", "implementation_name": "cpython",
       "platform_python_implementation": "CPython"}
for line in open(sys.argv[2]):
    line = line.split("#", 1)[0].strip()
    if line:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate(env):
            print(f"{requirement.name}{requirement.specifier}")
PY
torch=$(grep "^torch==" "$target")
"$VENV/bin/python" -m pip wheel -q "$torch" -w "$out" 2> >(quiet)  # with its own dependencies, which the lock leaves out
"$VENV/bin/python" -m pip wheel -q --no-deps -r "$target" -w "$out" 2> >(quiet)
"$VENV/bin/python" -m pip wheel -q "$moto" -w docker/s3/wheels 2> >(quiet)
touch "$stamp"
echo "wheelhouse: $(ls "$out"/*.whl | wc -l) wheels, $(du -sh "$out" | cut -f1)"
