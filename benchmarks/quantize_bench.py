"""Accuracy change from MLFLASK_QUANTIZE=1: the same logged model, fp32 and dynamic int8, on the lake's clean/test.

Usage: python benchmarks/quantize_bench.py --run-id ID [--rows 1000]   (with the env of the run: lake and MLflow)
"""

from __future__ import annotations

import argparse
import tempfile
import time

from mlplatform import lake
from mlplatform.predictor import Predictor
from mlplatform.settings import Settings
from mlplatform.storage import open_storage
from mlplatform.tracking import configure


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-id", required=True)
    p.add_argument("--rows", type=int, default=1000)
    args = p.parse_args()
    import mlflow

    settings = Settings.from_env()
    configure(settings)
    _, frames = lake.read_dataset(open_storage(settings), "clean")
    test = frames["test"].sample(n=min(args.rows, len(frames["test"])), random_state=0)
    texts, labels = test["text"].tolist(), test["label"].tolist()
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(f"runs:/{args.run_id}/model", dst_path=tmp)
        print(f"{'':6}{'accuracy':>10}{'seconds':>10}  ({len(texts)} test reviews)")
        for name, quantize in (("fp32", False), ("int8", True)):
            predictor = Predictor(path, quantize=quantize)
            start = time.perf_counter()
            predicted = [int(p["label"] == "positive") for p in predictor.predict(texts)]
            seconds = time.perf_counter() - start
            accuracy = sum(a == b for a, b in zip(predicted, labels, strict=True)) / len(labels)
            print(f"{name:6}{accuracy:>10.4f}{seconds:>10.2f}")


if __name__ == "__main__":
    main()
