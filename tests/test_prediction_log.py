"""The prediction log and feedback (issue #24) on a live `python -m apps.mlflask` with two workers, writing to
an S3 lake served over HTTP by moto: every answer is logged off the request path, a small buffer drops (and
counts) records instead of slowing a request, and feedback joins the log."""

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import requests

from mlplatform.data.storage import open_storage
from mlplatform.monitoring import predlog
from mlplatform.registry import Registry
from mlplatform.settings import Settings
from tests.helpers.inprocess import mlflask_app
from tests.helpers.mlflask import metric
from tests.helpers.services import start_mlflask, stop_process

NAME = "logged-movie"
TOKEN = "deploy-token-1234"
FEEDBACK_TOKEN = "feedback-token-5678"


def _start(tmp_path, runs, s3_env, **extra):
    env = {**runs["env"], **s3_env, "MLFLASK_TOKEN": TOKEN, "MLFLASK_FEEDBACK_TOKEN": FEEDBACK_TOKEN, **extra}
    env.pop("LAKE_DIR")
    url, process, log_path, _ = start_mlflask(tmp_path, env)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    answer = requests.post(url + "/models", json={"name": NAME, "model_uri": f"models:/{NAME}@champion"}, headers=auth)
    assert answer.status_code == 200, answer.text
    return url, process, open_storage(Settings.from_mapping(s3_env))


@pytest.fixture(scope="module")
def champion(serving_runs):
    Registry(Settings.from_mapping(serving_runs["env"])).promote(NAME, run_id=serving_runs["good"].run_id)
    return serving_runs


def _texts(count: int) -> list[str]:
    return [f"Review {i}: a {'fine' if i % 2 else 'dull'} film, " + "really " * (i % 7) for i in range(count)]


def _post_each(url: str, texts: list[str], workers: int = 8) -> list[tuple[int, float, dict]]:
    def one(text: str):
        started = time.perf_counter()
        with requests.Session() as session:  # a new connection per request, as clients meet it
            answer = session.post(url + "/predict", json={"model": NAME, "texts": [text]}, timeout=60)
        return answer.status_code, time.perf_counter() - started, answer.json()

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, texts))


def _logged(storage, until_rows: int, timeout: float = 60):
    window = (datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC) + timedelta(hours=1))
    deadline = time.monotonic() + timeout
    while True:
        rows = predlog.read(storage, predlog.LOG_STAGE, *window)
        if len(rows) >= until_rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


@pytest.fixture
def logging_server(champion, s3_env, tmp_path):
    """MLFlask flushing every 150 records, or every second."""
    url, process, storage = _start(
        tmp_path, champion, s3_env, MLFLASK_LOG_FLUSH_ROWS="150", MLFLASK_LOG_FLUSH_SECONDS="1"
    )
    try:
        yield url, storage
    finally:
        stop_process(process)


def test_every_answer_is_logged_in_several_flushes_and_feedback_gives_live_accuracy(logging_server):
    url, storage = logging_server
    texts = _texts(1000)
    answers = _post_each(url, texts)
    assert all(status == 200 for status, _, _ in answers)
    rows = _logged(storage, 1000)
    assert len(rows) == 1000
    assert len(storage.list(predlog.LOG_STAGE)) >= 3, "written in several flushes"
    ids = {body["predictions"][0]["prediction_id"]: body for _, _, body in answers}
    assert set(rows["prediction_id"]) == set(ids)
    row = rows.set_index("prediction_id").loc[next(iter(ids))]
    body = ids[row.name]
    assert (row["model"], row["version"], row["label"]) == (NAME, body["version"], body["predictions"][0]["label"])
    assert row["score"] == pytest.approx(body["predictions"][0]["score"])
    assert set(rows["text"]) == set(texts) and (rows["tokens"] > 5).all() and not rows["truncated"].any()
    assert rows["latency_ms"].gt(0).all() and rows["text_sha256"].str.len().eq(64).all()
    assert metric(url, "mlflask_prediction_log_records_total") == 1000
    first = [body["predictions"][0] for _, _, body in answers[:200]]
    _feedback(url, storage, texts[:200], first)


def test_a_small_buffer_drops_and_counts_and_never_slows_a_request(champion, s3_env, tmp_path):
    url, process, storage = _start(
        tmp_path,
        champion,
        s3_env,
        MLFLASK_LOG_BUFFER_BYTES="8192",
        MLFLASK_LOG_FLUSH_SECONDS="3",
        MLFLASK_LOG_TEXT_CHARS="0",
    )
    try:
        answers = _post_each(url, _texts(600), workers=16)
        assert [status for status, _, _ in answers].count(200) == 600, "no request failed"
        dropped = metric(url, "mlflask_prediction_log_dropped_total", reason="buffer_full")
        assert dropped > 0
        rows = _logged(storage, 600 - dropped, timeout=30)
        assert len(rows) + dropped == 600, f"{len(rows)} logged + {dropped} dropped"
        assert rows["text"].isna().all(), "MLFLASK_LOG_TEXT_CHARS=0 keeps no text"
        slowest = max(seconds for _, seconds, _ in answers)
        assert slowest < 10, f"a request took {slowest:.1f} s"
    finally:
        stop_process(process)


def test_a_graceful_stop_flushes_the_buffer(champion, s3_env, tmp_path):
    url, process, storage = _start(tmp_path, champion, s3_env, MLFLASK_LOG_FLUSH_SECONDS="600")
    try:
        answers = _post_each(url, _texts(40), workers=4)
        window = (datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC))
        assert predlog.read(storage, predlog.LOG_STAGE, *window).empty, "nothing flushed yet"
    finally:
        stop_process(process)  # SIGTERM: gunicorn's graceful stop
    assert len(_logged(storage, 40, timeout=5)) == len(answers)


def _feedback(url: str, storage, texts: list[str], answers: list[dict]) -> None:
    """True labels for 200 logged answers (150 by prediction_id, 50 by text hash): live accuracy as by hand."""
    from mlplatform.monitoring.drift import live_quality

    truth = ["positive" if "fine" in text else "negative" for text in texts]
    by_hand = sum(a["label"] == t for a, t in zip(answers, truth, strict=True)) / len(texts)
    items = [{"prediction_id": a["prediction_id"], "label": t} for a, t in zip(answers[:150], truth[:150], strict=True)]
    items += [{"text_sha256": predlog_hash(x), "label": t} for x, t in zip(texts[150:], truth[150:], strict=True)]
    auth = {"Authorization": f"Bearer {FEEDBACK_TOKEN}"}
    assert requests.post(url + "/feedback", json={"feedback": items}).status_code == 401
    deploy = {"Authorization": f"Bearer {TOKEN}"}
    assert requests.post(url + "/feedback", json={"feedback": items}, headers=deploy).status_code == 401, "own token"
    answer = requests.post(url + "/feedback", json={"feedback": items}, headers=auth)
    assert answer.status_code == 200 and answer.json() == {"accepted": len(texts)}, answer.text
    bad = requests.post(url + "/feedback", json={"feedback": [{"prediction_id": "x", "label": "1"}]}, headers=auth)
    assert bad.status_code == 400 and "prediction_id" in bad.json()["error"]
    wrong = requests.post(url + "/feedback", json={"feedback": [{**items[0], "label": "neutral"}]}, headers=auth)
    assert wrong.status_code == 400 and "neutral" in wrong.json()["error"]
    start, end = datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC) + timedelta(hours=1)
    log = predlog.read(storage, predlog.LOG_STAGE, start, end)
    feedback = predlog.read(storage, predlog.FEEDBACK_STAGE, start, end)
    assert feedback["sender"].eq("127.0.0.1").all() and feedback["request_id"].str.len().gt(0).all()
    quality = live_quality(predlog.with_feedback(log, feedback))
    assert quality["feedback_rows"] == len(texts)
    assert quality["live_accuracy"] == pytest.approx(by_hand)
    again = [{"text_sha256": predlog_hash(texts[150]), "label": truth[150]}] * 20  # one labelled text, resent
    assert requests.post(url + "/feedback", json={"feedback": again}, headers=auth).status_code == 200
    feedback = predlog.read(storage, predlog.FEEDBACK_STAGE, start, end)
    assert live_quality(predlog.with_feedback(log, feedback))["feedback_rows"] == len(texts), "one label per text"


def predlog_hash(text: str) -> str:
    from apps.mlflask.prediction_log import text_hash

    return text_hash(text)


def test_the_buffer_holds_what_is_logged_not_the_body_and_is_capped_in_bytes(tmp_path, servable_for_log):
    """In process: a 1 MiB text costs the buffer its first 8,192 characters; the row keeps 512 of them, the hash of
    all of it, and says it was truncated; past the byte cap records are dropped."""
    from apps.mlflask.prediction_log import COUNT_CHARS, RECORD_BYTES, PredictionLog, text_hash
    from mlplatform.data.storage import LocalStorage

    storage = LocalStorage(tmp_path / "lake")
    big = "great film " * 100_000  # 1.1 MB
    capacity = 2 * (RECORD_BYTES + 4 * COUNT_CHARS)
    log = PredictionLog(storage, capacity, flush_rows=100, flush_seconds=60, text_chars=512)
    answer = [{"prediction_id": "a" * 32, "label": "positive", "score": 0.9}]
    for _ in range(3):
        log.record({"model": NAME}, servable_for_log, [big], answer)
    assert log._count == 2 and log._bytes <= capacity, "the third record did not fit"
    assert max(len(p) for entry in log._pending for p in entry[4]) == COUNT_CHARS
    log.flush()
    window = (datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC) + timedelta(hours=1))
    rows = predlog.read(storage, predlog.LOG_STAGE, *window)
    assert len(rows) == 2 and rows["truncated"].all()
    assert rows["text"].str.len().eq(512).all() and rows["text_sha256"].eq(text_hash(big)).all()
    assert rows["tokens"].gt(servable_for_log.max_length).all()


@pytest.fixture(scope="module")
def servable_for_log(tiny_bert, tmp_path_factory):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from mlplatform.serving.servable import Servable
    from mlplatform.training.artifacts import build_servable

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    folder = build_servable(model, AutoTokenizer.from_pretrained(tiny_bert), tmp_path_factory.mktemp("s"), 64, False)
    return Servable(folder)


def test_a_sender_past_its_feedback_rate_gets_429_and_others_do_not():
    from apps.mlflask.ratelimit import RateLimiter

    now = [0.0]
    limiter = RateLimiter(60, clock=lambda: now[0])  # 60 labels a minute: one a second, 60 at once
    assert limiter.take("a", 50) == 0 and limiter.take("a", 10) == 0
    assert limiter.take("a", 5) == pytest.approx(5.0), "the bucket is empty: 5 s until 5 more"
    assert limiter.take("b", 60) == 0, "another sender has its own allowance"
    now[0] = 5.0
    assert limiter.take("a", 5) == 0


def test_feedback_takes_its_own_token_records_the_sender_and_is_limited(tmp_path):
    """In process (Flask's test client): the deploy token is refused, over the rate is a 429 with Retry-After."""
    env = {
        "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp_path}/mlflow.db",
        "MLFLASK_PREDICTION_LOG": "1",
        "MLFLASK_TOKEN": TOKEN,
        "MLFLASK_FEEDBACK_TOKEN": FEEDBACK_TOKEN,
        "MLFLASK_FEEDBACK_RATE": "3",
        "MLFLASK_FOLLOW_INTERVAL": "0",
    }
    item = {"prediction_id": "a" * 32, "label": "positive"}
    auth = {"Authorization": f"Bearer {FEEDBACK_TOKEN}"}
    with mlflask_app(tmp_path, env) as (client, _, _):
        deploy_token = {"Authorization": f"Bearer {TOKEN}"}
        assert client.post("/feedback", json={"feedback": [item]}, headers=deploy_token).status_code == 401
        assert client.post("/feedback", json={"feedback": [item] * 3}, headers=auth).status_code == 200
        limited = client.post("/feedback", json={"feedback": [item]}, headers=auth)
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert "too much feedback" in limited.get_json()["error"]
    without = {k: v for k, v in env.items() if k != "MLFLASK_FEEDBACK_TOKEN"}
    with mlflask_app(tmp_path / "closed", without) as (client, _, _):
        closed = client.post("/feedback", json={"feedback": [item]}, headers=auth)
    assert closed.status_code == 403 and "MLFLASK_FEEDBACK_TOKEN" in closed.get_json()["error"]
