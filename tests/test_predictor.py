"""The one predictor, in process: order, padding-aware chunks, truncation, quantization."""

from pathlib import Path

import pytest

from mlplatform.serving.predictor import Predictor


@pytest.fixture(scope="module")
def predictor(tiny_bert, tmp_path_factory):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = tmp_path_factory.mktemp("classifier")
    AutoModelForSequenceClassification.from_pretrained(
        tiny_bert, num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1}
    ).save_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    tokenizer.model_max_length = 64
    tokenizer.save_pretrained(folder)
    return Predictor(folder, batch_size=4)


@pytest.fixture(scope="module")
def classifier_dir(predictor):
    return predictor.tokenizer.name_or_path


def test_results_keep_input_order_whatever_the_chunking(predictor):
    texts = ["good film " * 30, "bad", "good film", "boring " * 50, "superb acting", "x"]
    together = predictor.predict(texts)
    alone = [predictor.predict([t])[0] for t in texts]
    for a, b in zip(together, alone, strict=True):
        assert a["label"] == b["label"]
        assert a["probabilities"]["positive"] == pytest.approx(b["probabilities"]["positive"], abs=1e-5)


def test_chunks_bound_padding_and_batch_size(predictor):
    chunks = predictor._chunks([6, 13, 17, 64, 5, 5, 5, 5, 5])
    assert sorted(i for c in chunks for i in c) == list(range(9))
    assert all(len(c) <= 4 for c in chunks)
    assert [3] in chunks, "the one long text is not padded together with short ones"


def test_overlong_text_is_truncated(predictor):
    assert predictor.max_length == 64
    assert predictor.predict(["word " * 10_000])[0]["label"] in {"negative", "positive"}


def test_quantized_predictor_stays_close(predictor, classifier_dir):
    quantized = Predictor(classifier_dir, quantize=True)
    texts = ["The plot was brilliant.", "Dull and boring."]
    for a, b in zip(predictor.predict(texts), quantized.predict(texts), strict=True):
        assert b["probabilities"]["positive"] == pytest.approx(a["probabilities"]["positive"], abs=0.05)


TEXTS = ["The plot was brilliant.", "Dull and boring.", "ok", "word " * 200, "Wonderfully acted, truly excellent."]


def _copy(source, target):
    import shutil

    shutil.copytree(source, target)
    return target


def test_onnx_backend_is_exact_against_torch(predictor, classifier_dir, tmp_path):
    onnx = Predictor(_copy(classifier_dir, tmp_path / "m"), batch_size=4, backend="onnx")
    assert onnx.backend == "onnx" and "matched torch" in onnx.backend_note
    assert (tmp_path / "m" / "onnx" / "model.onnx").is_file(), "exported next to the model, for the other workers"
    for a, b in zip(predictor.predict(TEXTS), onnx.predict(TEXTS), strict=True):
        assert a["label"] == b["label"]
        assert b["probabilities"]["positive"] == pytest.approx(a["probabilities"]["positive"], abs=1e-4)
    assert onnx.predict_ids([[2, 5, 6]], [[1, 1, 1]]) == predictor.predict_ids([[2, 5, 6]], [[1, 1, 1]])


def test_onnx_int8_of_a_trained_model_keeps_its_labels(sentiment_bert, tmp_path):
    from tests.test_mlflask import FOUR

    onnx = Predictor(_copy(sentiment_bert, tmp_path / "m"), quantize=True, backend="onnx")
    torch_fp32 = Predictor(sentiment_bert)
    assert onnx.backend == "onnx-int8"
    assert [p["label"] for p in onnx.predict(FOUR)] == [p["label"] for p in torch_fp32.predict(FOUR)]


def test_a_broken_export_falls_back_to_torch_and_says_why(classifier_dir, tmp_path):
    folder = _copy(classifier_dir, tmp_path / "m")
    (folder / "onnx").mkdir()
    (folder / "onnx" / "model.onnx").write_bytes(b"not a model")
    fallback = Predictor(folder, backend="onnx")
    assert fallback.backend == "torch" and "failed" in fallback.backend_note
    assert fallback.predict(["fine"])[0]["label"] in {"negative", "positive"}


def test_an_export_that_disagrees_is_not_served(classifier_dir, tmp_path, monkeypatch):
    from mlplatform.serving import onnx as onnx_backend

    real = onnx_backend.OrtForward

    class Skewed(real):
        def __call__(self, batch):
            logits = super().__call__(batch)
            return logits + [5.0, -5.0]  # always "negative"

    monkeypatch.setattr(onnx_backend, "OrtForward", Skewed)
    refused = Predictor(_copy(classifier_dir, tmp_path / "m"), backend="onnx")
    assert refused.backend == "torch" and "disagreed" in refused.backend_note


def test_fused_export_holds_attention_and_layernorm_kernels(classifier_dir, tmp_path):
    import onnx

    Predictor(_copy(classifier_dir, tmp_path / "m"), backend="onnx")
    ops = {node.op_type for node in onnx.load(str(tmp_path / "m" / "onnx" / "model.onnx")).graph.node}
    assert {"Attention", "SkipLayerNormalization", "EmbedLayerNormalization"} <= ops


def test_int8_may_flip_a_coin_toss_but_not_a_decision():
    import numpy as np

    from mlplatform.serving import onnx as onnx_backend

    reference = np.array([[0.02, 0.0], [3.0, -3.0], [-2.0, 2.0]])  # a near-tie, then two clear decisions
    near_tie_flipped = onnx_backend.compare(lambda b: reference, lambda b: reference * [[-1, -1], [1, 1], [1, 1]], [{}])
    assert near_tie_flipped.argmax_agreement < 1 and near_tie_flipped.passes(quantized=True)
    assert not near_tie_flipped.passes(quantized=False)
    decision_flipped = onnx_backend.compare(lambda b: reference, lambda b: reference * [[1, 1], [-1, -1], [1, 1]], [{}])
    assert not decision_flipped.passes(quantized=True)


def test_int8_that_job_3_refused_is_served_as_fp32_onnx(sentiment_bert, tmp_path):
    import json

    from mlplatform.serving import onnx as onnx_backend

    check = onnx_backend.int8_test_split(["positive"] * 90 + ["negative"] * 10, ["positive"] * 100, ["positive"] * 100)
    assert check == {"texts": 100, "agreement": 0.9, "accuracy_loss": -0.1, "passed": False}
    folder = _copy(sentiment_bert, tmp_path / "m")
    Predictor(folder, quantize=True, backend="onnx")  # exports model.onnx and model-int8.onnx
    (folder / "onnx" / onnx_backend.PARITY).write_text(json.dumps({"int8": {"test_split": check}}))
    served = Predictor(folder, quantize=True, backend="onnx")
    assert served.backend == "onnx" and not served.quantized
    assert "job 3 refused int8" in served.backend_note


def test_job_3_checks_int8_on_the_labelled_test_split(sentiment_bert, tmp_path):
    import json

    import mlflow
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from mlplatform.training import artifacts
    from tests.test_mlflask import FOUR

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    model = AutoModelForSequenceClassification.from_pretrained(sentiment_bert)
    tokenizer = AutoTokenizer.from_pretrained(sentiment_bert)
    truth = [row["label"] for row in Predictor(sentiment_bert).predict(FOUR * 10)]
    with mlflow.start_run() as run:
        artifacts.log_onnx(model, tokenizer, FOUR * 10, truth, int8=True)
    folder = mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/onnx", dst_path=str(tmp_path / "dl"))
    check = json.loads((tmp_path / "dl" / "onnx" / "parity.json").read_text())["int8"]["test_split"]
    assert check["texts"] == 40 and check["passed"] == (check["agreement"] >= 0.99 and check["accuracy_loss"] <= 0.01)
    logged = mlflow.get_run(run.info.run_id).data
    assert logged.metrics["onnx_int8_agreement"] == check["agreement"]
    assert {"model.onnx", "model-int8.onnx", "parity.json"} <= {p.name for p in Path(folder).iterdir()}


def test_serving_cleans_texts_as_job_2_cleaned_the_training_data(predictor):
    from mlplatform.data.cleaning import clean_text

    raw = "A moving film.<br /><br />The <i>acting</i> &amp; the music   are superb."
    assert clean_text(raw) == "A moving film. The acting & the music are superb."
    tokens = predictor.tokenizer([raw, clean_text(raw)])["input_ids"]
    assert tokens[0] != tokens[1], "uncleaned, the model would read other tokens"
    assert predictor.predict([raw]) == predictor.predict([clean_text(raw)])
