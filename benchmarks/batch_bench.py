"""Batch scoring speed and memory (issue #24): `score_dataset` (jobs/batch_predictions.py) against MLFlask's
in-process throughput, on the same rows and the same model.

Arms, measured in this run:
  batch job      score_dataset on incoming/ (every core, 512-text batches, length-sorted forward passes)
  MLFlask        one worker's in-process predictor as `python -m apps.mlflask` sets it up (cores / MLFLASK_WORKERS
                 threads), fed MLFLASK_MAX_BATCH texts per call: the most one MLFlask worker scores without HTTP

Rows are the real sentences of ../shared/data/rt-polarity-dev.csv, repeated (with new ids) up to --rows.
Memory: the scoring's peak RSS growth beside the input frame's own size (pandas deep memory usage).

Usage: python benchmarks/batch_bench.py [--rows 50000] [--run-id ID --tracking-uri URI]
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_bench import _train  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SENTENCES = REPO.parent / "shared" / "data" / "rt-polarity-dev.csv"


def _rows(count: int, folder: str) -> str:
    sentences = pd.read_csv(SENTENCES)
    repeats = -(-count // len(sentences))
    frame = pd.concat([sentences] * repeats, ignore_index=True).iloc[:count]
    frame.insert(0, "id", [f"bench_{i}" for i in range(len(frame))])
    path = Path(folder, "rows.csv")
    frame.to_csv(path, index=False)
    return str(path)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=8000, help="rows to score (the 8,000 sentences, repeated)")
    p.add_argument("--run-id")
    p.add_argument("--tracking-uri")
    p.add_argument("--source", default="sample:2000", help="job 1's DATA_SOURCE for the model trained here")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("TQDM_DISABLE", "1")
    from mlplatform.data import lake
    from mlplatform.data.dataprep import prepare_incoming
    from mlplatform.data.sources import SourceOptions
    from mlplatform.data.storage import open_storage
    from mlplatform.registry import Registry
    from mlplatform.serving.batch import score_dataset
    from mlplatform.serving.loader import load_servable
    from mlplatform.settings import Settings, cores

    with tempfile.TemporaryDirectory() as tmp:
        run_id, uri = (args.run_id, args.tracking_uri) if args.run_id else _train(tmp, args.source)
        import mlflow

        mlflow.set_tracking_uri(uri)
        experiment = mlflow.get_experiment(mlflow.get_run(run_id).info.experiment_id).name
        settings = Settings.from_mapping(
            {
                "LAKE_DIR": f"{tmp}/bench-lake",
                "MLFLOW_BACKEND_STORE_URI": uri,
                "MLFLOW_EXP_NAME": experiment,
                "MODEL_NAME": "batch-bench",
            }
        )
        registry = Registry(settings)
        registry.promote("batch-bench", run_id=run_id)
        storage = open_storage(settings)
        prepare_incoming(storage, f"csv:{_rows(args.rows, tmp)}", SourceOptions())
        _, frames = lake.read_dataset(storage, "incoming")
        frame_mb = frames["rows"].memory_usage(deep=True).sum() / 2**20
        texts = frames["rows"]["text"].tolist()
        del frames

        threads = max(1, cores() // settings.mlflask_workers)
        served = load_servable(f"runs:/{run_id}/model", settings.replace(torch_num_threads=threads))
        served.predict(texts[:64])  # warm, as MLFlask's warmer does
        started = time.perf_counter()
        step = settings.mlflask_max_batch
        for start in range(0, len(texts), step):
            served.predict(texts[start : start + step])
        mlflask_rate = len(texts) / (time.perf_counter() - started)
        backend = served.backend
        del served

        before = _peak_rss_mb()
        outcome = score_dataset(settings, registry, stage="incoming")
        growth = _peak_rss_mb() - before
        print(f"rows: {len(texts)} real sentences (rt-polarity dev, repeated); backend {backend}; {cores()} cores")
        print(f"{'arm':<44} {'rows/s':>8}")
        print(f"{'MLFlask in-process (1 worker, ' + str(threads) + ' threads, 32/call)':<44} {mlflask_rate:8.1f}")
        print(f"{'batch job (score_dataset, every core)':<44} {outcome.rows_per_second:8.1f}")
        print(f"ratio batch / MLFlask in-process: {outcome.rows_per_second / mlflask_rate:.2f}x")
        print(f"input frame {frame_mb:.1f} MiB; peak RSS growth while scoring {max(growth, 0):.1f} MiB")


if __name__ == "__main__":
    main()
