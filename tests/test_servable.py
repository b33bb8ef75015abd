"""The servable, in process: order, padding-aware chunks, truncation, int8, the checks job 3 runs against torch,
and the loader's path for versions logged before the servable."""

import json
import shutil

import numpy as np
import pytest

from mlplatform.errors import PlatformError
from mlplatform.serving.loader import open_servable
from mlplatform.serving.servable import CONFIG, Servable
from mlplatform.settings import Settings
from mlplatform.training import artifacts, onnx_export

TEXTS = ["The plot was brilliant.", "Dull and boring.", "ok", "word " * 200, "Wonderfully acted, truly excellent."]


def _classifier(source):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(
        source, num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1}
    ).eval()
    return model, AutoTokenizer.from_pretrained(source)


def _torch_probabilities(model, tokenizer, texts, max_length):
    import torch

    from mlplatform.data.text import clean_text

    encoded = tokenizer([clean_text(t) for t in texts], truncation=True, max_length=max_length, padding=True)
    with torch.inference_mode():
        logits = model(**{k: torch.tensor(v) for k, v in encoded.items()}).logits.numpy()
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True), logits


@pytest.fixture(scope="module")
def classifier(tiny_bert):
    return _classifier(tiny_bert)


@pytest.fixture(scope="module")
def servable_dir(classifier, tmp_path_factory):
    model, tokenizer = classifier
    return artifacts.build_servable(model, tokenizer, tmp_path_factory.mktemp("servable"), 64, int8=True)


@pytest.fixture(scope="module")
def servable(servable_dir):
    folder = servable_dir
    config = json.loads((folder / CONFIG).read_text())
    (folder / CONFIG).write_text(json.dumps({**config, "batch_size": 4}))
    return Servable(folder)


def test_results_keep_input_order_whatever_the_chunking(servable):
    texts = ["good film " * 30, "bad", "good film", "boring " * 50, "superb acting", "x"]
    together = servable.predict(texts)
    alone = [servable.predict([t])[0] for t in texts]
    for a, b in zip(together, alone, strict=True):
        assert a["label"] == b["label"]
        assert a["probabilities"]["positive"] == pytest.approx(b["probabilities"]["positive"], abs=1e-5)


def test_chunks_bound_padding_and_batch_size(servable):
    chunks = servable._chunks([6, 13, 17, 64, 5, 5, 5, 5, 5])
    assert sorted(i for c in chunks for i in c) == list(range(9))
    assert all(len(c) <= 4 for c in chunks)
    assert [3] in chunks, "the one long text is not padded together with short ones"


def test_overlong_text_is_truncated_and_counted_whole(servable):
    assert servable.max_length == 64
    assert servable.predict(["word " * 10_000])[0]["label"] in {"negative", "positive"}
    assert servable.count_tokens(["word " * 100, "word"]) == [102, 3]


def test_onnx_fp32_is_exact_against_torch(servable_dir, classifier):
    model, tokenizer = classifier
    fp32 = Servable(servable_dir, int8=False)
    expected, _ = _torch_probabilities(model, tokenizer, TEXTS, 64)
    got = fp32.probabilities(TEXTS)
    assert np.abs(expected - got).max() < 1e-4
    import torch

    with torch.inference_mode():
        ids = model(input_ids=torch.tensor([[2, 5, 6]]), attention_mask=torch.tensor([[1, 1, 1]])).logits.argmax(-1)
    assert fp32.predict_ids([[2, 5, 6]], [[1, 1, 1]]) == ids.tolist()


def test_the_frame_is_the_pyfunc_signature(servable):
    frame = servable.predict_frame(TEXTS)
    assert list(frame.columns) == ["label", "score", "probability_negative", "probability_positive"]
    assert frame["score"].tolist() == pytest.approx(frame[["probability_negative", "probability_positive"]].max(1))
    assert frame["label"].tolist() == [p["label"] for p in servable.predict(TEXTS)]
    assert servable.predict_frame([]).empty


def test_fused_export_holds_attention_and_layernorm_kernels(servable_dir):
    import onnx

    ops = {node.op_type for node in onnx.load(str(servable_dir / "model.onnx")).graph.node}
    assert {"Attention", "SkipLayerNormalization", "EmbedLayerNormalization"} <= ops


def test_int8_may_flip_a_coin_toss_but_not_a_decision():
    reference = np.array([[0.505, 0.495], [0.9, 0.1], [0.1, 0.9]])  # a near-tie, then two clear decisions
    candidate = reference.copy()
    candidate[0] = candidate[0, ::-1]
    near_tie_flipped = onnx_export.fp32_check(reference, candidate)
    assert near_tie_flipped["agreement"] < 1 and near_tie_flipped["passed"]
    decision_flipped = onnx_export.fp32_check(reference, reference[[0, 2, 1]])
    assert not decision_flipped["passed"]


def test_job_3_refuses_an_export_that_disagrees_with_torch(classifier, tmp_path):
    model, tokenizer = classifier
    folder = artifacts.build_servable(model, tokenizer, tmp_path / "s", 64, int8=False)
    _, logits = _torch_probabilities(model, tokenizer, TEXTS, 64)
    skewed = np.where(np.eye(2)[logits.argmax(-1)] == 1, 0.0, 10.0)  # torch "decides" the other way, clearly
    with pytest.raises(PlatformError, match="disagrees with torch"):
        artifacts.check_servable(folder, TEXTS, ["positive"] * len(TEXTS), skewed, int8=False)


def test_int8_is_served_only_where_job_3_approved_it(sentiment_bert, tmp_path):
    from tests.test_mlflask import FOUR

    model, tokenizer = _classifier(sentiment_bert)
    folder = artifacts.build_servable(model, tokenizer, tmp_path / "s", 64, int8=True)
    texts = FOUR * 10
    _, logits = _torch_probabilities(model, tokenizer, texts, 64)
    truth = [model.config.id2label[int(i)] for i in logits.argmax(-1)]
    check = artifacts.check_servable(folder, texts, truth, logits, int8=True)
    assert check["fp32"]["passed"] and check["fp32"]["max_probability_diff"] < 1e-4
    assert check["int8"]["texts"] == 40
    int8 = check["int8"]
    assert int8["passed"] == (
        int8["agreement"] >= 0.99 and int8["accuracy_loss"] <= 0.01 and int8["batch_invariance"] <= 1e-4
    )
    served = Servable(folder)
    assert served.quantized == check["int8"]["passed"]
    assert [p["label"] for p in Servable(folder, int8=True).predict(FOUR)] == truth[:4], "int8 keeps clear labels"
    refused = onnx_export.int8_test_split(["positive"] * 90 + ["negative"] * 10, ["positive"] * 100, ["positive"] * 100)
    assert refused == {"texts": 100, "agreement": 0.9, "accuracy_loss": -0.1, "passed": False}
    config = json.loads((folder / CONFIG).read_text())
    (folder / CONFIG).write_text(json.dumps({**config, "int8": False}))
    assert Servable(folder).backend == "onnx" and Servable(folder, int8=True).backend == "onnx-int8"
    assert Servable(folder, int8=False).backend == "onnx"


def test_a_servable_folder_without_its_config_is_refused_by_name(servable_dir, tmp_path):
    from mlplatform.serving.servable import NotServable

    broken = shutil.copytree(servable_dir, tmp_path / "b")
    (broken / CONFIG).write_text("[1, 2]")
    with pytest.raises(NotServable, match="servable.json"):
        Servable(broken)
    with pytest.raises(NotServable, match="no servable"):
        open_servable(tmp_path, Settings.from_mapping({}))


def test_an_older_transformers_version_is_served_from_its_runs_onnx_export(classifier, servable, tmp_path):
    """The layout a version registered before the servable has once fetched: transformers flavor plus onnx/."""
    model, tokenizer = classifier
    folder = tmp_path / "older"
    model.save_pretrained(folder / "model")
    tokenizer.model_max_length = 64
    tokenizer.save_pretrained(folder / "components" / "tokenizer")
    (folder / "MLmodel").write_text("flavors:\n  transformers: {}\n  python_function: {}\nrun_id: abc\n")
    shutil.copytree(servable.folder, folder / "onnx", ignore=shutil.ignore_patterns("servable.json", "tokenizer.json"))
    older = open_servable(folder, Settings.from_mapping({}))
    assert older.max_length == 64 and older.labels == ["negative", "positive"]
    assert "older transformers version" in older.backend_note
    np.testing.assert_allclose(older.probabilities(TEXTS), servable.probabilities(TEXTS), atol=1e-6)
    shutil.rmtree(folder / "onnx")
    shutil.rmtree(folder / "servable-from-transformers")
    from mlplatform.serving.servable import NotServable

    with pytest.raises(NotServable, match="no ONNX export"):
        open_servable(folder, Settings.from_mapping({}))


def test_serving_cleans_texts_as_job_2_cleaned_the_training_data(servable):
    from mlplatform.data.text import clean_text

    raw = "A moving film.<br /><br />The <i>acting</i> &amp; the music   are superb."
    assert clean_text(raw) == "A moving film. The acting & the music are superb."
    assert servable._counter.encode(raw).ids != servable._counter.encode(clean_text(raw)).ids
    assert servable.predict([raw]) == servable.predict([clean_text(raw)])
