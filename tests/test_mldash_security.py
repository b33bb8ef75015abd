"""MLDash's locked-down defaults: a login beyond loopback, and only known Host names."""

import base64

import pytest
import requests

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


@pytest.fixture(scope="module")
def live_mldash(tmp_path_factory):
    """`python -m apps.mldash` with a login, on a free loopback port."""
    import sys

    from mlplatform.launch import Service, free_port
    from tests.helpers.services import PLATFORM_VARS, env_without

    port = free_port()
    folder = tmp_path_factory.mktemp("mldash")
    env = {
        **env_without(*PLATFORM_VARS),
        "MLDASH_PORT": str(port),
        "MLDASH_USERS": "ana:s3cret",
        "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{folder}/mlflow.db",
    }
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "apps.mldash"]
    service = Service("mldash", command, url + "/_mldash/health", env=env, cwd=folder).start(timeout=120)
    try:
        yield url
    finally:
        service.stop()


@pytest.mark.parametrize(
    "header",
    [
        "Basic",
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Bearer x",
        "Basic " + "A" * 5000,
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
    ],
)
def test_a_malformed_login_is_a_401_not_a_500(live_mldash, header):
    import requests

    answer = requests.get(live_mldash + "/", headers={"Authorization": header}, timeout=10)
    assert answer.status_code == 401 and "Basic" in answer.headers["WWW-Authenticate"]


def _raw_post(url: str, headers: str) -> str:
    """A POST that announces a 50 MB body and sends none: the answer must come without it."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(
            (
                f"POST /_dash-update-component HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: 50000000\r\n{headers}\r\n"
            ).encode()
        )
        return sock.recv(4096).decode(errors="replace").split("\r\n", 1)[0]


def test_an_oversized_body_is_refused_unread_with_or_without_a_login(live_mldash):
    """The front refuses a body announced past MLDash's 1 MiB before reading any of it, so no one, logged in or
    not, makes MLDash buffer more than that (a smaller body is read whole before the login is checked, as behind
    any buffering proxy)."""
    assert " 413 " in _raw_post(live_mldash, "")
    login = "Authorization: Basic " + base64.b64encode(b"ana:s3cret").decode() + "\r\n"
    assert " 413 " in _raw_post(live_mldash, login)
    small = requests.post(live_mldash + "/_dash-update-component", data=b"{}", timeout=10)
    assert small.status_code == 401


def test_a_model_card_shows_no_images_or_links():
    import re

    from apps.mldash.views import inert_markdown

    card = (
        "# Card\n![pixel](http://tracker.example/p.png)\nSee [docs](https://evil.example) or <https://evil.example>.\n"
    )
    card += "[ref]: https://evil.example\nBare: https://evil.example/x\n| metric | value |\n|---|---|\n| acc | 0.9 |"
    shown = inert_markdown(card)
    assert "![" not in shown and "](" not in shown and "<https" not in shown and "[ref]:" not in shown
    assert re.findall(r"(?<!`)https?://", shown) == [], "every URL left is code, not a link"
    assert "| acc | 0.9 |" in shown and "[image: pixel]" in shown and "See docs" in shown
