"""Following an alias, in process: each worker follows, and one that decided on a stale read of the state must not
deploy the same version again (that gave every worker a new deploy id to reload, and `/ready` flapped to 503)."""

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from apps.mlflask import create_app
from apps.mlflask.deploy import deploy
from mlplatform.names import ModelRef
from mlplatform.settings import Settings

NAME = "follow-once"


@pytest.fixture(scope="module")
def app(serving_runs, tmp_path_factory):
    mlflow.set_tracking_uri(serving_runs["env"]["MLFLOWSERVER_URL"])
    version = mlflow.register_model(f"runs:/{serving_runs['good'].run_id}/model", NAME).version
    MlflowClient().set_registered_model_alias(NAME, "champion", version)
    env = {**serving_runs["env"], "MLFLASK_STORE": str(tmp_path_factory.mktemp("store"))}
    app = create_app(Settings.from_mapping({**env, "MLFLASK_PREDICTION_LOG": "0", "MLFLASK_FOLLOW_INTERVAL": "0"}))
    yield app
    app.extensions["mlflask"].stop()


def test_a_follower_with_a_stale_view_does_not_deploy_the_served_version_again(app):
    uri = f"models:/{NAME}@champion"
    assert app.test_client().post("/models", json={"name": "movie", "model_uri": uri}).status_code == 200
    ctx = app.extensions["mlflask"]
    served = ctx.store.read_state()["movie"]
    again = deploy(ctx.registry, ctx.store, ctx.models, "movie", ModelRef.parse(uri), "follow", if_changed=True)
    assert again["deploy_id"] == served["deploy_id"] == ctx.store.read_state()["movie"]["deploy_id"]
    redeployed = deploy(ctx.registry, ctx.store, ctx.models, "movie", ModelRef.parse(uri), "deploy")
    assert redeployed["deploy_id"] != served["deploy_id"], "an explicit deploy still replaces it"
