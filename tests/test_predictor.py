"""The one predictor, in process: order, padding-aware chunks, truncation, quantization."""

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
