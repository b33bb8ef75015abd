"""MLDash's locked-down defaults: a login beyond loopback, and only known Host names."""

import base64

import pytest

from apps.mldash.app import create_app
from mlplatform.errors import ConfigError
from mlplatform.settings import Settings


def _basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_a_non_loopback_bind_needs_users():
    with pytest.raises(ConfigError, match="MLDASH_USERS"):
        create_app(Settings.from_mapping({"MLDASH_HOST": "0.0.0.0"}))


def test_login_is_required_when_users_are_set():
    client = create_app(
        Settings.from_mapping({"MLDASH_HOST": "0.0.0.0", "MLDASH_USERS": "ana:s3cret"})
    ).server.test_client()
    assert client.get("/").status_code == 401
    assert client.get("/", headers=_basic("ana", "wrong")).status_code == 401
    assert client.get("/", headers=_basic("ana", "s3cret")).status_code == 200


@pytest.mark.parametrize("host, status", [("localhost:8050", 200), ("127.0.0.1", 200), ("evil.example", 400)])
def test_only_allowed_host_names_are_answered(host, status):
    client = create_app(Settings.from_mapping({})).server.test_client()
    assert client.get("/", headers={"Host": host}).status_code == status


def test_the_mlflask_token_goes_with_deploy_and_remove():
    from apps.mldash.backend import Backend

    assert Backend.from_settings(Settings.from_mapping({"MLFLASK_TOKEN": "t0ken"})).client._token == "t0ken"
