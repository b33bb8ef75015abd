"""The ONNX Runtime backend: export a sequence classifier to ONNX (opset 17), optionally quantize it to int8,
check it against torch, and run it. The predictor calls it; it knows nothing of batching or tokenising."""

from __future__ import annotations

import importlib.util
import json
import logging
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
OPSET = 17
FP32, INT8 = "model.onnx", "model-int8.onnx"
PARITY = "parity.json"
FP32_TOLERANCE = 1e-3  # max |logit difference| for an fp32 export to count as the same model


def available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


@dataclass(frozen=True)
class Parity:
    texts: int
    argmax_agreement: float
    max_logit_diff: float

    def passes(self, quantized: bool) -> bool:
        """fp32 must be exact (same argmax everywhere, logits within tolerance); int8 may differ a little."""
        if quantized:
            return self.argmax_agreement >= 0.9
        return self.argmax_agreement == 1.0 and self.max_logit_diff <= FP32_TOLERANCE


def export(model, tokenizer, folder: Path, int8: bool = False) -> Path:
    """Write `model.onnx` (and `model-int8.onnx`) to `folder`; return the fp32 file."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    sample = tokenizer(["An example review.", "Another, longer example review for the shapes."], padding=True)
    names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in sample]
    tensors = tuple(torch.tensor(sample[name]) for name in names)
    axes = {name: {0: "batch", 1: "sequence"} for name in names} | {"logits": {0: "batch"}}
    was_training = model.training
    model.eval()
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python booleans: the parity check is the test
        torch.onnx.export(
            model,
            tensors,
            str(folder / FP32),
            input_names=names,
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    model.train(was_training)
    if int8:
        quantize(folder / FP32, folder / INT8)
    return folder / FP32


def quantize(source: Path, target: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    return target


class OrtForward:
    """An ONNX Runtime session that takes the tokenizer's numpy batch and returns logits."""

    def __init__(self, path: Path, threads: int = 0):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads > 0:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._names = [i.name for i in self._session.get_inputs()]

    def __call__(self, batch: dict) -> np.ndarray:
        feed = {name: np.asarray(batch[name], dtype=np.int64) for name in self._names}
        return self._session.run(["logits"], feed)[0]


def compare(reference, candidate, batches: list[dict]) -> Parity:
    """How closely `candidate` follows `reference` (both: batch -> logits) on the same tokenised batches."""
    agree, total, worst = 0, 0, 0.0
    for batch in batches:
        expected, got = np.asarray(reference(batch)), np.asarray(candidate(batch))
        agree += int((expected.argmax(-1) == got.argmax(-1)).sum())
        total += len(expected)
        worst = max(worst, float(np.abs(expected - got).max()))
    return Parity(total, agree / max(total, 1), worst)


def write_parity(folder: Path, parity: Parity, quantized: bool) -> None:
    (folder / PARITY).write_text(json.dumps({**asdict(parity), "quantized": quantized}, indent=2))
