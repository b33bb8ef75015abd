"""Start `mlflow server` with MLflow's basic-auth app and one user per service (compose's mlflow command).

    python docker/mlflow_auth.py --auth-db sqlite:////mlflow/basic_auth.db -- mlflow server --host 0.0.0.0 ...

Users come from MLFLOW_AUTH_USERS (`user:password,...`). Everyone authenticated may read (default_permission
READ); a user may write only what it created (MLflow gives the creator MANAGE). So the promoter, which creates the
experiment and the registered model, is the one that can log runs, register versions and move aliases; MLFlask's
user can resolve and download them and nothing more. The admin (MLFLOW_AUTH_ADMIN_PASSWORD) is MLflow's own.
Every password, the admin's included, is set again at every start, so rotating one is a restart.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
from pathlib import Path

_CONFIG = """[mlflow]
default_permission = READ
database_uri = {database}
admin_username = {admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
"""


def users(spec: str) -> dict[str, str]:
    pairs = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        user, sep, password = item.partition(":")
        if not sep or not user or not password:
            raise SystemExit("mlflow_auth: MLFLOW_AUTH_USERS must be user:password,... (an item has no password)")
        pairs[user] = password
    return pairs


def ensure_users(database: str, wanted: dict[str, str], admin: str, admin_password: str) -> None:
    """The users with these passwords, now: MLflow's auth app sets the admin's only when it creates the user."""
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore()
    store.init_db(database)
    for user, password, is_admin in [(admin, admin_password, True), *((u, p, False) for u, p in wanted.items())]:
        if store.has_user(user):
            store.update_user(user, password=password)
        else:
            store.create_user(user, password, is_admin=is_admin)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    ours, command = argv[:split], argv[split + 1 :]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--auth-db", required=True, help="SQLAlchemy URI of the users' database")
    parser.add_argument("--admin", default="admin", help="MLflow's admin user (password: MLFLOW_AUTH_ADMIN_PASSWORD)")
    args = parser.parse_args(ours)
    if not command:
        parser.error("give the mlflow server command after --")
    if not os.environ.get("MLFLOW_AUTH_ADMIN_PASSWORD"):
        parser.error("set MLFLOW_AUTH_ADMIN_PASSWORD")
    if args.auth_db.startswith("sqlite:///"):
        Path(args.auth_db.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    wanted = users(os.environ.get("MLFLOW_AUTH_USERS", ""))
    ensure_users(args.auth_db, wanted, args.admin, os.environ["MLFLOW_AUTH_ADMIN_PASSWORD"])
    config = Path(tempfile.mkdtemp(prefix="mlflow-auth-")) / "basic_auth.ini"
    config.write_text(_CONFIG.format(database=args.auth_db, admin=args.admin))
    env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(config)}  # read by the auth app in the server we exec
    # The auth app's CSRF key: one for all the server's workers; a new one per start only logs browsers out.
    env.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", secrets.token_hex(32))
    os.execvpe(command[0], [*command, "--app-name", "basic-auth"], env)


if __name__ == "__main__":
    sys.exit(main())
