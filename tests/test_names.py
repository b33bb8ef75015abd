"""The name and alias rules are the registry's, and every entry point applies them alike: job 4's flags,
`POST /models` on a live MLFlask, MLDash's name field and MLFLASK_DEPLOYMENTS accept and refuse the same strings."""

import pytest
import requests

from apps.mldash import views
from jobs import model_deployment
from mlplatform.errors import ConfigError
from mlplatform.names import is_valid_alias, is_valid_name
from mlplatform.settings import Settings

NAMES = ["movie-sentiment", "a", "A.b_c-1", "x" * 64, "x" * 65, ".", "..", "a/b", "", "é", "a b", "-a", "_"]
ALIASES = ["champion", "challenger", "a-b_c", "a" * 64, "a" * 65, "1x", "latest", "v2", "", "a.b", "-a", "x@y"]


def _job4(name: str, alias: str) -> bool:
    try:
        model_deployment._parser(Settings.from_mapping({})).parse_args([f"--name={name}", f"--alias={alias}"])
    except SystemExit:
        return False
    return True


def _post_models(url: str, name: str, alias: str) -> bool:
    answer = requests.post(f"{url}/models", json={"name": name, "model_uri": f"models:/{name}@{alias}"}, timeout=60)
    assert answer.status_code < 500, answer.text
    return answer.status_code not in (400, 422)  # accepted: the registry is asked, and has no such model (404)


def _mldash(name: str) -> bool:
    _, name_error, _ = views.deploy(None, name, None)  # checked before anything else: no backend reached
    return name_error == ""


def _deployments(name: str, alias: str) -> bool:
    try:
        Settings.from_mapping({"MLFLASK_DEPLOYMENTS": f"{name}=models:/{name}@{alias}"})
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize("name", NAMES)
def test_every_entry_point_accepts_and_refuses_the_same_names(name, mlflask):
    verdicts = {
        "job 4 --name": _job4(name, "champion"),
        "POST /models": _post_models(mlflask["url"], name, "champion"),
        "MLDash name field": _mldash(name),
        "MLFLASK_DEPLOYMENTS": _deployments(name, "champion"),
    }
    assert set(verdicts.values()) == {is_valid_name(name)}, verdicts


@pytest.mark.parametrize("alias", ALIASES)
def test_every_entry_point_accepts_and_refuses_the_same_aliases(alias, mlflask):
    verdicts = {
        "job 4 --alias": _job4("no-such-model", alias),
        "POST /models": _post_models(mlflask["url"], "no-such-model", alias),
        "MLFLASK_DEPLOYMENTS": _deployments("no-such-model", alias),
    }
    assert set(verdicts.values()) == {is_valid_alias(alias)}, verdicts


def test_the_rules_refuse_what_mlflow_would_misread():
    assert not is_valid_alias("latest") and not is_valid_alias("v3") and not is_valid_alias("1x")
    assert not is_valid_name("..") and is_valid_name("a..b")
