"""Shadow and canary traffic (issue #23) on a live `python -m apps.mlflask` with two workers: the shadow never
answers and its agreement is counted; a canary answers its share, and a weight of 0 rolls it back."""

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from mlplatform.registry import Registry
from mlplatform.settings import Settings
from tests.helpers.inprocess import mlflask_app
from tests.helpers.mlflask import metric

NAME = "traffic-movie"
REQUESTS = 200


@pytest.fixture(scope="module")
def served(mlflask):
    """`traffic-movie@champion` on the taught run, `@challenger` on the untaught one, the champion served."""
    runs = mlflask["runs"]
    registry = Registry(Settings.from_mapping(runs["env"]))
    champion = registry.promote(NAME, run_id=runs["good"].run_id)
    challenger = registry.promote(NAME, run_id=runs["other"].run_id, alias="challenger")
    body = {"name": NAME, "model_uri": f"models:/{NAME}@champion"}
    assert requests.post(mlflask["url"] + "/models", json=body, timeout=300).status_code == 200
    return {**mlflask, "champion": champion.version, "challenger": challenger.version}


def _answers(url: str, count: int) -> list[dict]:
    def one(i: int) -> dict:
        with requests.Session() as session:  # a new connection per request, as clients meet it
            answer = session.post(
                url + "/predict", json={"model": NAME, "texts": [f"A fine film, take {i}."]}, timeout=60
            )
        assert answer.status_code == 200, answer.text
        return answer.json()

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(count)))


def _traffic(url: str, body: dict) -> dict:
    answer = requests.put(f"{url}/models/{NAME}/traffic", json=body, timeout=300)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_shadow_sees_its_share_and_never_answers(served):
    url = served["url"]
    policy = _traffic(url, {"shadow": {"model_uri": f"models:/{NAME}@challenger", "share": 0.5}})
    assert policy["shadow"] == {"model_uri": f"models:/{NAME}@challenger", "share": 0.5}
    answers = _answers(url, REQUESTS)
    assert {a["version"] for a in answers} == {served["champion"]}, "every answer comes from the champion"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # shadow work finishes after the answers
        seen = metric(url, "mlflask_shadow_texts_total", model=NAME) + metric(
            url, "mlflask_shadow_dropped_total", model=NAME
        )
        if seen >= 60 and requests.get(f"{url}/models/{NAME}", timeout=5).json()["shadow"]["texts"] == seen:
            break
        time.sleep(0.5)
    mirrored = metric(url, "mlflask_shadow_texts_total", model=NAME)
    assert 60 <= seen <= 140, f"{seen} of {REQUESTS} requests mirrored at share 0.5"
    assert mirrored > 0 and metric(url, "mlflask_shadow_agreed_total", model=NAME) <= mirrored
    shadow = requests.get(f"{url}/models/{NAME}", timeout=5).json()["shadow"]
    assert shadow["texts"] == mirrored and 0 <= shadow["agreement"] <= 1 and shadow["mean_latency_ms"] > 0
    assert requests.get(f"{url}/models/{NAME}.shadow", timeout=5).status_code == 200  # the arm, alias-followed
    assert _traffic(url, {"shadow": None}).get("shadow") is None
    assert requests.get(f"{url}/models/{NAME}.shadow", timeout=5).status_code == 404


def test_a_canary_answers_its_share_and_weight_zero_rolls_it_back(served):
    url = served["url"]
    policy = _traffic(url, {"canary": {"model_uri": f"models:/{NAME}@challenger", "weight": 0.5}})
    assert policy["canary"]["weight"] == 0.5
    assert requests.get(f"{url}/models/{NAME}", timeout=5).json()["canary"]["model_uri"].endswith("@challenger")
    versions = Counter(a["version"] for a in _answers(url, REQUESTS))
    assert set(versions) == {served["champion"], served["challenger"]}, versions
    assert all(60 <= n <= 140 for n in versions.values()), versions
    assert metric(url, "mlflask_canary_answers_total", model=NAME, arm="canary") == versions[served["challenger"]]
    _traffic(url, {"canary": {"model_uri": f"models:/{NAME}@challenger", "weight": 0}})
    assert {a["version"] for a in _answers(url, 50)} == {served["champion"]}


@pytest.mark.parametrize(
    "body, status",
    [
        ({"canary": {"model_uri": "s3://bucket/evil", "weight": 0.5}}, 400),
        ({"shadow": {"model_uri": f"models:/{NAME}@challenger", "share": 1.5}}, 400),
        ({"mirror": {}}, 400),
        ({"canary": {"model_uri": f"models:/{NAME}@challenger", "weight": 0.9}}, 400),  # most traffic: not by accident
    ],
)
def test_bad_traffic_requests_are_refused(served, body, status):
    answer = requests.put(f"{served['url']}/models/{NAME}/traffic", json=body, timeout=30)
    assert answer.status_code == status and "error" in answer.json()
    assert requests.put(f"{served['url']}/models/ghost/traffic", json={}, timeout=30).status_code == 404


def test_mldash_shows_the_shadow_agreement_while_it_runs(served, browser):
    from apps.mldash.app import create_app
    from tests.test_mldash import _settings

    url = served["url"]
    _traffic(url, {"shadow": {"model_uri": f"models:/{NAME}@challenger", "share": 1.0}})
    try:
        _answers(url, 20)
        browser.start_server(create_app(_settings(served)))
        browser.wait_for_contains_text("#deployed-models", NAME, timeout=30)
        browser.click(f"#deployed-models input[value='{NAME}']")
        browser.wait_for_contains_text("#model-card", "agreement", timeout=30)
        card = browser.text("#model-card")
        assert f"models:/{NAME}@challenger on 100% of requests" in card and "texts" in card
    finally:
        _traffic(url, {"shadow": None})


def test_mlflask_shadow_is_set_up_at_start(served, tmp_path):
    """In process: MLFLASK_SHADOW sets the shadow up by itself once the name is served."""
    env = {
        **served["runs"]["env"],
        "MLFLASK_DEPLOYMENTS": f"{NAME}=models:/{NAME}@champion",
        "MLFLASK_SHADOW": f"{NAME}=models:/{NAME}@challenger:0.25",
    }
    with mlflask_app(tmp_path, env) as (client, _, _):
        shadow = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            answer = client.get(f"/models/{NAME}")
            shadow = answer.get_json().get("shadow") if answer.status_code == 200 else None
            if shadow:
                break
            time.sleep(1)
        assert shadow and shadow["model_uri"] == f"models:/{NAME}@challenger" and shadow["share"] == 0.25
        assert client.get(f"/models/{NAME}.shadow").get_json()["version"] == served["challenger"]


def test_a_malformed_mlflask_shadow_names_the_variable():
    from mlplatform.errors import ConfigError

    assert Settings.from_mapping({"MLFLASK_SHADOW": "a=models:/a@challenger:0.2"}).shadows["a"][1] == 0.2
    for bad in ("a=models:/a@challenger", "a=models:/a@challenger:2", "a=s3://x:0.5"):
        with pytest.raises(ConfigError, match="MLFLASK_SHADOW"):
            Settings.from_mapping({"MLFLASK_SHADOW": bad})  # at load: a typo stops MLFlask at start


def test_a_canary_above_half_needs_majority_true():
    from pydantic import ValidationError

    from apps.mlflask.schemas import CanaryPolicy

    uri = f"models:/{NAME}@challenger"
    assert CanaryPolicy(model_uri=uri, weight=0.5).weight == 0.5
    with pytest.raises(ValidationError, match="majority"):
        CanaryPolicy(model_uri=uri, weight=0.51)
    assert CanaryPolicy(model_uri=uri, weight=1, majority=True).majority
