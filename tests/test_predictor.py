"""The one predictor, in process: order, padding-aware chunks, truncation, quantization."""

import pytest

from mlplatform.predictor import Predictor


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


def test_quantized_predictor_stays_close(predictor, tiny_bert, tmp_path_factory):
    quantized = Predictor(predictor.model.name_or_path, quantize=True)
    texts = ["The plot was brilliant.", "Dull and boring."]
    for a, b in zip(predictor.predict(texts), quantized.predict(texts), strict=True):
        assert b["probabilities"]["positive"] == pytest.approx(a["probabilities"]["positive"], abs=0.05)
