"""Accuracy by backend: the same logged model as torch fp32, ONNX Runtime fp32, ONNX Runtime int8 and torch int8,
on the same rows of the lake's clean/test. The default backend (ONNX fp32) must give the same label as torch fp32
on every row; int8 may lose at most 1 point.

Usage: python benchmarks/quantize_bench.py --run-id ID [--rows 1000]   (with the env of the run: lake and MLflow)
"""

from __future__ import annotations

import argparse
import tempfile
import time

from mlplatform.serving.predictor import Predictor

from mlplatform.data import lake
from mlplatform.data.storage import open_storage
from mlplatform.registry import Registry
from mlplatform.settings import Settings


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-id", required=True)
    p.add_argument("--rows", type=int, default=1000)
    args = p.parse_args()
    settings = Settings.load()
    registry = Registry(settings)
    _, frames = lake.read_dataset(open_storage(settings), "clean")
    test = frames["test"].sample(n=min(args.rows, len(frames["test"])), random_state=0)
    texts, labels = test["text"].tolist(), test["label"].tolist()
    with tempfile.TemporaryDirectory() as tmp:
        path = registry.download(f"runs:/{args.run_id}/model", tmp, "the run's model", missing="the run has no model")
        print(f"{len(texts)} test reviews")
        print("| backend | accuracy | same label as torch fp32 | seconds |")
        print("|---|---|---|---|")
        reference = None
        for backend, quantize in (("torch", False), ("onnx", False), ("onnx", True), ("torch", True)):
            predictor = Predictor(path, quantize=quantize, backend=backend, onnx_dir=f"{tmp}/onnx")
            start = time.perf_counter()
            predicted = [int(p["label"] == "positive") for p in predictor.predict(texts)]
            seconds = time.perf_counter() - start
            reference = reference or predicted
            accuracy = sum(a == b for a, b in zip(predicted, labels, strict=True)) / len(labels)
            same = sum(a == b for a, b in zip(predicted, reference, strict=True)) / len(labels)
            print(f"| {predictor.backend} | {accuracy:.4f} | {same:.4f} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
