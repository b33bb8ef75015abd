"""Jobs 4 and 5 end to end against the tracking server and a live MLFlask, including their failure exits."""

import json

import pytest
from mlflow.tracking import MlflowClient

from jobs import interface_handler, model_deployment
from mlplatform.serving.behaviour import SAMPLE_TEXTS, texts_to_check
from mlplatform.serving.client import MLFlaskClient
from tests.helpers.services import free_port, start_mlflask, stop_process


@pytest.fixture
def serving_env(mlflask, monkeypatch):
    for name, value in {**mlflask["runs"]["env"], "MLFLASK_URL": mlflask["url"]}.items():
        monkeypatch.setenv(name, value)
    return mlflask


def _best_by(runs, metric):
    return max((runs["good"], runs["other"]), key=lambda r: r.metrics[metric])


def test_deploy_best_run_registers_champion_and_is_idempotent(serving_env, capsys):
    runs = serving_env["runs"]
    best = _best_by(runs, "val_f1")
    assert model_deployment.main(["--name", "job-movie", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would register run {best.run_id}" in out and "would serve models:/job-movie@champion" in out
    registry = MlflowClient(runs["env"]["MLFLOWSERVER_URL"])
    assert registry.search_registered_models("name = 'job-movie'") == [], "a dry run changes nothing"
    assert MLFlaskClient(serving_env["url"]).model("job-movie") is None

    assert model_deployment.main(["--name", "job-movie"]) == 0
    out = capsys.readouterr().out
    assert "Top runs by val_f1 (highest first)" in out
    assert f"register run {best.run_id} as job-movie version 1" in out
    assert "job-movie@champion moved to version 1" in out
    assert "now serves job-movie = models:/job-movie@champion (version 1" in out
    served = MLFlaskClient(serving_env["url"]).model("job-movie")
    assert served["run_id"] == best.run_id and served["version"] == "1" and served["alias"] == "champion"
    version = registry.get_model_version_by_alias("job-movie", "champion")
    assert version.run_id == best.run_id and version.version == "1"
    assert "Movie-review sentiment classifier" in version.description and version.tags["synthetic"] == "true"

    assert model_deployment.main(["--name", "job-movie"]) == 0
    out = capsys.readouterr().out
    assert "already on version 1" in out and "already serves" in out and "register" not in out


def test_job_4_moves_the_alias_even_when_mlflask_already_serves_the_run(serving_env, capsys):
    runs = serving_env["runs"]
    registry = MlflowClient(runs["env"]["MLFLOWSERVER_URL"])
    # the model that learned nothing fails the behavioural checks on staging: no champion, exit 3
    assert model_deployment.main(["--name", "realign", "--run-id", runs["other"].run_id]) == 3
    assert "behavioural checks failed on the challenger" in capsys.readouterr().err
    (failed,) = registry.search_model_versions(f"name = 'realign' and run_id = '{runs['other'].run_id}'")
    assert failed.tags["gate.decision"] == "failed_checks"
    aliases = registry.get_registered_model("realign").aliases
    assert "champion" not in aliases and "challenger" not in aliases, "no canary can follow a failed challenger"
    client = MLFlaskClient(serving_env["url"])
    assert client.model("realign") is None and client.model("realign-challenger") is None
    assert model_deployment.main(["--name", "realign", "--run-id", runs["good"].run_id]) == 0
    registry.set_registered_model_alias("realign", "champion", "1")  # someone moved it behind our back
    capsys.readouterr()
    assert model_deployment.main(["--name", "realign", "--run-id", runs["good"].run_id]) == 0
    assert "realign@champion moved to version 2" in capsys.readouterr().out
    assert registry.get_model_version_by_alias("realign", "champion").version == "2"
    assert len(registry.search_model_versions("name = 'realign'")) == 2, "versions are reused, not re-registered"

    assert model_deployment.main(["--name", "realign", "--version", "1"]) == 0  # rollback
    assert "realign@champion moved to version 1" in capsys.readouterr().out
    assert MLFlaskClient(serving_env["url"]).model("realign")["run_id"] == runs["other"].run_id


def test_deploy_by_a_loss_metric_takes_the_lowest(serving_env, capsys):
    runs = serving_env["runs"]
    code = model_deployment.main(["--name", "by-loss", "--metric", "val_loss"])
    out = capsys.readouterr().out
    assert "(lowest first)" in out and "by loss:" in out
    table = out.split("by loss:\n", 1)[1].splitlines()[2:4]  # the two contenders, best first
    losses = [float(row.split()[4]) for row in table]
    assert table[0].startswith("challenger") and losses == sorted(losses), table
    challenger_run = next(r for r in (runs["good"], runs["other"]) if r.run_id.startswith(table[0].split()[2]))
    served = MLFlaskClient(serving_env["url"]).model("by-loss")
    if code == 0:  # it also passed the checks
        assert served["run_id"] == challenger_run.run_id
    else:  # the lowest loss on the shared set went to a model that failed the behavioural checks
        assert code == 3 and served is None


def test_interface_handler_prints_a_table_and_passes_the_checks(serving_env, capsys, monkeypatch):
    # By val_f1 a model stuck on "positive" can beat a weak real one (F1 of the positive class is 0.67 for
    # it); accuracy separates the trained tiny model from the untrained one.
    assert model_deployment.main(["--name", "job-movie", "--metric", "val_accuracy"]) == 0
    assert MLFlaskClient(serving_env["url"]).predict("job-movie", ["x"])["run_id"] == serving_env["runs"]["good"].run_id
    capsys.readouterr()
    assert interface_handler.main(["--name", "job-movie"]) == 0
    out = capsys.readouterr().out
    assert "Very good movie!" in out and "What a nasty cynical film..." in out
    assert "all 5 behavioural checks passed" in out
    monkeypatch.setenv("INPUT_TEXTS", "first line\nsecond line\n\n")
    assert interface_handler.main(["--name", "job-movie", "--skip-behaviour"]) == 0
    assert "second line" in capsys.readouterr().out
    monkeypatch.setenv("INPUT_TEXTS", json.dumps(["__import__('os').system('echo pwned')"]))
    assert interface_handler.main(["--name", "job-movie", "--skip-behaviour"]) == 0
    assert "pwned" not in capsys.readouterr().out.replace("echo pwned", "")


def test_interface_handler_fails_on_a_model_that_learned_nothing(serving_env, capsys):
    client = MLFlaskClient(serving_env["url"])
    client.deploy("weak", run_id=serving_env["runs"]["other"].run_id)
    assert interface_handler.main(["--name", "weak"]) == 1
    captured = capsys.readouterr()
    assert "FAIL" in captured.out and "behavioural checks failed" in captured.err


@pytest.mark.parametrize(
    "args, env, message",
    [
        (["--name", "ghost"], {}, "404"),
        (["--name", "job-movie"], {"INPUT_TEXTS": "[not json"}, "INPUT_TEXTS looks like JSON"),
        (["--name", "job-movie"], {"INPUT_TEXTS": "[1, 2]"}, "list of strings"),
        (["--name", "job-movie"], {"MLFLASK_URL": "dead"}, "unreachable"),
    ],
)
def test_interface_handler_failures(serving_env, monkeypatch, capsys, args, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, f"http://127.0.0.1:{free_port()}" if value == "dead" else value)
    assert interface_handler.main(args) == 1
    assert message in capsys.readouterr().err


def test_model_deployment_failures(serving_env, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("MLFLOW_EXP_NAME", "no-runs-here")
    assert model_deployment.main([]) == 1
    assert "no FINISHED run in experiment 'no-runs-here'" in capsys.readouterr().err
    monkeypatch.setenv("MLFLOW_EXP_NAME", "serving-tests")

    monkeypatch.setenv("MLFLASK_URL", f"http://127.0.0.1:{free_port()}")
    assert model_deployment.main(["--name", "unreachable"]) == 1
    assert "unreachable" in capsys.readouterr().err

    with pytest.raises(SystemExit) as exited:
        model_deployment.main(["--name", "bad name"])
    assert exited.value.code == 2 and "--name='bad name' is not valid" in capsys.readouterr().err

    assert model_deployment.main(["--name", "no-such-version", "--version", "7"]) == 1
    assert "models:/no-such-version/7 does not exist" in capsys.readouterr().err

    url, process, _, _ = start_mlflask(tmp_path, {**serving_env["runs"]["env"], "MLFLASK_TOKEN": "right"}, workers=1)
    try:
        monkeypatch.setenv("MLFLASK_URL", url)
        monkeypatch.setenv("MLFLASK_TOKEN", "wrong")
        assert model_deployment.main(["--name", "guarded"]) == 1
        err = capsys.readouterr().err
        assert "401" in err and "wrong" not in err
        registry = MlflowClient(serving_env["runs"]["env"]["MLFLOWSERVER_URL"])
        assert not registry.get_registered_model("guarded").aliases, "a refused deploy moves no alias"
        monkeypatch.setenv("MLFLASK_TOKEN", "right")
        assert model_deployment.main(["--name", "guarded"]) == 0
    finally:
        stop_process(process)


def test_default_texts_are_the_sample_projects_four():
    assert len(SAMPLE_TEXTS) == 4 and SAMPLE_TEXTS[0] == "Very good movie!"
    assert texts_to_check(json.dumps(SAMPLE_TEXTS)) == SAMPLE_TEXTS == texts_to_check(None)
