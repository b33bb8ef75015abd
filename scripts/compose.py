"""The compose stack on any machine, this one included (no image registry): build, bring up, run, check, tear down.

  python scripts/compose.py up          # build what is missing, start every service, wait until all are healthy
  python scripts/compose.py pipeline    # run the `pipeline` profile once (the five jobs)
  python scripts/compose.py down        # remove the containers and the volumes
  python scripts/compose.py check       # all of it, then checks from the host; tears down; non-zero on failure

Where `python:3.11-slim` cannot be pulled, a Debian base is made from Debian's packages (scripts/base_image.sh) and
pip in the build installs from a wheelhouse this machine's pip fills (scripts/wheelhouse.sh). Where MinIO's images
cannot be pulled, docker/compose.s3.yml puts moto's S3 server in MinIO's place. A Docker daemon is started when
none answers (`dockerd --iptables=false`, as root), and stopped again at the end of `check` only if it was.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mlplatform.launch import ServiceError  # noqa: E402

PROJECT = "mlplatform"
ENV_FILE = REPO / "env" / "docker.env"
IMAGE, S3_IMAGE, LOCAL_BASE = "mlplatform:latest", "mlplatform-s3:latest", "mlplatform-base:bookworm"
SERVE_IMAGE = "mlplatform-serve:latest"  # MLFlask alone: no torch (Dockerfile target serve)
FRONT_IMAGE = "mlplatform-front:latest"  # nginx from Debian's packages (docker/front)
FRONT = "http://127.0.0.1:5001"  # MLFlask, through the front: its replicas publish no port
OFFICIAL_BASE = "python:3.11-slim"
MINIO_IMAGES = ("minio/minio:RELEASE.2025-04-22T22-12-26Z", "minio/mc:RELEASE.2025-04-16T18-13-26Z")
LOGS = REPO / "build" / "compose"


class CheckFailed(Exception):
    """A check of the running stack failed; the message says which and what was seen."""


def sh(*argv: str, check: bool = True, capture: bool = False, timeout: float | None = None, **kwargs):
    """Run a command from the repository; its output goes to the console unless captured."""
    result = subprocess.run(argv, cwd=REPO, text=True, capture_output=capture, timeout=timeout, check=False, **kwargs)
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout or "").strip()[-2000:] if capture else ""
        raise CheckFailed(f"`{' '.join(argv)}` exited with {result.returncode}{': ' + detail if detail else ''}")
    return result


def ok(*argv: str) -> bool:
    return sh(*argv, check=False, capture=True).returncode == 0


# --- the daemon and the images -----------------------------------------------------------------------------------


def ensure_docker() -> subprocess.Popen | None:
    """A Docker daemon that answers; returns the one started here (to stop later), or None."""
    if ok("docker", "info"):
        return None
    LOGS.mkdir(parents=True, exist_ok=True)
    print("compose: no Docker daemon answers; starting dockerd --iptables=false", flush=True)
    log = open(LOGS / "dockerd.log", "ab")  # noqa: SIM115 - the daemon keeps it
    daemon = subprocess.Popen(["dockerd", "--iptables=false"], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise CheckFailed(f"dockerd exited with {daemon.returncode}; see {LOGS / 'dockerd.log'}")
        if ok("docker", "info"):
            return daemon
        time.sleep(1)
    raise CheckFailed("dockerd did not answer within 60 s")


def stop_docker(daemon: subprocess.Popen | None) -> None:
    if daemon is not None and daemon.poll() is None:
        daemon.terminate()
        daemon.wait(60)


def have(image: str) -> bool:
    return ok("docker", "image", "inspect", image)


def pullable(image: str) -> bool:
    """Present, or pulled now (a registry answers); a machine without one says no within seconds."""
    return have(image) or sh("docker", "pull", "-q", image, check=False, capture=True, timeout=120).returncode == 0


def build_images() -> bool:
    """The platform's image (always built: Docker's layer cache makes an unchanged one quick, and a stale one is
    never run), and the S3 stand-in when MinIO cannot be pulled; returns whether MinIO is used."""
    use_minio = all(pullable(image) for image in MINIO_IMAGES)
    base = OFFICIAL_BASE if pullable(OFFICIAL_BASE) else LOCAL_BASE
    if base == LOCAL_BASE:
        print(f"compose: {OFFICIAL_BASE} cannot be pulled; building {LOCAL_BASE} from Debian's packages", flush=True)
        sh("bash", "scripts/base_image.sh", LOCAL_BASE)
        sh("bash", "scripts/wheelhouse.sh")
    commit = sh("git", "rev-parse", "HEAD", check=False, capture=True).stdout.strip() or "unknown"
    started = time.monotonic()
    sh(
        "docker",
        "build",
        "--network",
        "host",
        "--build-arg",
        f"BASE_IMAGE={base}",
        "--build-arg",
        f"GIT_COMMIT={commit}",
        "-t",
        IMAGE,
        ".",
    )
    size = sh("docker", "image", "inspect", "-f", "{{.Size}}", IMAGE, capture=True).stdout.strip()
    print(f"compose: built {IMAGE} from {base} in {time.monotonic() - started:.0f} s ({int(size) / 1e9:.2f} GB)")
    started = time.monotonic()
    sh("docker", "build", "--network", "host", "--target", "serve", "--build-arg", f"BASE_IMAGE={base}", "-t",
       SERVE_IMAGE, ".")  # fmt: skip
    size = sh("docker", "image", "inspect", "-f", "{{.Size}}", SERVE_IMAGE, capture=True).stdout.strip()
    print(f"compose: built {SERVE_IMAGE} in {time.monotonic() - started:.0f} s ({int(size) / 1e6:.0f} MB)")
    sh("docker", "build", "-q", "--network", "host", "--build-arg", f"BASE_IMAGE={base}", "-t", FRONT_IMAGE,
       "docker/front")  # fmt: skip
    if not use_minio:
        print("compose: MinIO's images cannot be pulled; moto's S3 server stands in (docker/compose.s3.yml)")
        sh("bash", "scripts/wheelhouse.sh")
        sh(
            "docker",
            "build",
            "-q",
            "--network",
            "host",
            "--build-arg",
            f"BASE_IMAGE={base}",
            "-t",
            S3_IMAGE,
            "docker/s3",
        )
    return use_minio


# --- compose -----------------------------------------------------------------------------------------------------


def compose(use_minio: bool, *args: str, **kwargs):
    files = ["-f", "docker-compose.yml"] + ([] if use_minio else ["-f", "docker/compose.s3.yml"])
    return sh("docker-compose", "-p", PROJECT, "--env-file", str(ENV_FILE), *files, *args, **kwargs)


def containers(use_minio: bool) -> dict[str, list[str]]:
    """{service: [container id, ...]} of the project's containers, stopped ones included."""
    ids = compose(use_minio, "ps", "-a", "-q", capture=True).stdout.split()
    found: dict[str, list[str]] = {}
    for cid in ids:
        service = sh(
            "docker", "inspect", "-f", '{{index .Config.Labels "com.docker.compose.service"}}', cid, capture=True
        ).stdout.strip()
        found.setdefault(service, []).append(cid)
    return found


def wait_healthy(use_minio: bool, timeout: float = 600) -> None:
    """Every running service healthy (those with a check) or exited 0 (the one-shot init), within `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        states = {}
        for service, ids in containers(use_minio).items():
            for cid in ids:
                fmt = (
                    "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}-{{end}} {{.State.ExitCode}}"
                )
                status, health, code = sh("docker", "inspect", "-f", fmt, cid, capture=True).stdout.split()
                states[f"{service}/{cid[:8]}"] = (status, health, code)
        bad = {k: v for k, v in states.items() if v[0] == "exited" and v[2] != "0" or v[1] == "unhealthy"}
        if bad:
            raise CheckFailed(f"unhealthy or failed: {bad}")
        waiting = {k: v for k, v in states.items() if v[0] != "exited" and v[1] not in ("healthy", "-")}
        if states and not waiting:
            return
        if time.monotonic() > deadline:
            raise CheckFailed(f"not healthy within {timeout:.0f} s: {waiting}")
        time.sleep(3)


def up(use_minio: bool, *extra: str) -> None:
    started = time.monotonic()
    compose(use_minio, "up", "-d", *extra)
    wait_healthy(use_minio)
    print(f"compose: every service healthy in {time.monotonic() - started:.0f} s", flush=True)


def print_urls() -> None:
    values = dict(line.split("=", 1) for line in ENV_FILE.read_text().splitlines() if "=" in line and line[0] != "#")
    print(
        "compose: the stack is up\n"
        f"  MLflow    http://127.0.0.1:5000   (login: admin, or promoter; passwords in {ENV_FILE.relative_to(REPO)})\n"
        f"  MLFlask   {FRONT}   (token: MLFLASK_TOKEN in {ENV_FILE.relative_to(REPO)})\n"
        f"  MLDash    http://127.0.0.1:8050   (login: MLDASH_USERS in {ENV_FILE.relative_to(REPO)}, "
        f"{values.get('MLDASH_USERS', '').split(':')[0]})\n"
        "  Dagster   http://127.0.0.1:3000\n"
        "  S3        http://127.0.0.1:9000"
    )


def replica_versions(use_minio: bool, name: str) -> dict[str, str | None]:
    """{container: the version of `name` it serves} for every running MLFlask replica, asked inside each one."""
    ask = (
        "import json, sys, urllib.request; "
        "print(json.load(urllib.request.urlopen('http://127.0.0.1:5001/models/' + sys.argv[1], timeout=5))"
        ".get('version', ''))"
    )
    versions: dict[str, str | None] = {}
    for cid in containers(use_minio).get("mlflask", []):
        if sh("docker", "inspect", "-f", "{{.State.Running}}", cid, capture=True).stdout.strip() != "true":
            continue
        answer = sh("docker", "exec", cid, "python", "-c", ask, name, check=False, capture=True)
        versions[cid[:12]] = answer.stdout.strip() or None if answer.returncode == 0 else None
    return versions


def logs_of_failures(use_minio: bool, lines: int = 40) -> None:
    """The last lines of every service's log, unhealthy or failed ones first: what a failed run needs to be read."""
    for service in containers(use_minio):
        print(f"\n--- {service}: last {lines} log lines ---", file=sys.stderr)
        compose(use_minio, "logs", "--no-color", "--tail", str(lines), service, check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "pipeline", "down", "check"])
    args = parser.parse_args(argv)
    daemon = ensure_docker()
    use_minio = build_images() if args.command in ("up", "check") else all(map(have, MINIO_IMAGES))
    try:
        if args.command == "up":
            up(use_minio)
            print_urls()
        elif args.command == "pipeline":
            compose(use_minio, "--profile", "pipeline", "run", "--rm", "pipeline")
        elif args.command == "down":
            compose(use_minio, "--profile", "pipeline", "down", "-v", "--remove-orphans")
        else:
            from scripts.compose_checks import run_checks

            return run_checks(use_minio, daemon)
    except (CheckFailed, ServiceError) as exc:
        print(f"compose: FAILED: {exc}", file=sys.stderr)
        logs_of_failures(use_minio)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
