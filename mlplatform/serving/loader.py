"""The one loader: a servable from a `models:/` or `runs:/` URI of the configured MLflow, or from a folder.

MLFlask, the promotion gate, batch scoring, monitoring and the benchmarks load models here and nowhere else, with
one thread policy (`compute_threads`). A folder is what `fetch` left: an MLflow pyfunc model whose artifacts hold
the servable. Versions registered before the servable existed (the transformers flavor, with the run's `onnx/`
export beside it) are served through `_adapt_older`, without torch.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import yaml

from mlplatform.errors import PlatformError
from mlplatform.registry.tracking import Tracking
from mlplatform.serving.servable import ARTIFACT, CONFIG, FP32, INT8, TOKENIZER, NotServable, Servable
from mlplatform.settings import Settings, cores

_OLDER = "servable-from-transformers"  # where an older version's files are assembled into a servable


def compute_threads(settings: Settings) -> int:
    """Compute threads for one process's forward passes: TORCH_NUM_THREADS (MLFlask sets each worker's share),
    else every core."""
    return settings.torch_num_threads or cores()


def fetch(tracking: Tracking, uri: str, target: Path, backend: str = "onnx") -> Path:
    """Download the model at `uri` into `target`; returns the folder that holds its MLmodel file. An older
    (transformers-flavor) version gets its run's ONNX export beside it; the torch backend, the run's checkpoint."""
    folder = Path(tracking.download(uri, target, f"fetching {uri}", missing=f"{uri} has no model"))
    folder = next((p for p in [folder, *folder.iterdir()] if (p / "MLmodel").is_file()), folder)
    if backend == "torch" and _mlmodel(folder).get("run_id"):
        run_id = _mlmodel(folder)["run_id"]
        tracking.download(f"runs:/{run_id}/checkpoint", folder, "fetching the torch checkpoint", missing="none")
    if not (folder / "artifacts" / ARTIFACT / CONFIG).is_file() and (folder / "MLmodel").is_file():
        run_id = _mlmodel(folder).get("run_id")
        if run_id:
            try:
                tracking.download(f"runs:/{run_id}/onnx", folder, "fetching the run's ONNX export", missing="none")
            except PlatformError:
                pass  # _adapt_older says what is missing
    return folder


def servable_folder(folder: Path) -> Path:
    """The servable inside a fetched model folder (or `folder` itself when it is one)."""
    for candidate in (folder, folder / "artifacts" / ARTIFACT, folder / _OLDER):
        if (candidate / CONFIG).is_file():
            return candidate
    if (folder / "MLmodel").is_file() and "transformers" in (_mlmodel(folder).get("flavors") or {}):
        return _adapt_older(folder)
    raise NotServable(f"{folder} holds no servable ({CONFIG}) and no older transformers model")


def open_servable(folder: Path, settings: Settings) -> Servable:
    """A fetched model (or servable folder) ready to predict, with the settings' backend, int8 choice and threads."""
    servable = servable_folder(Path(folder))
    threads = compute_threads(settings)
    backend = settings.mlflask_backend
    if backend == "torch":
        return Servable(servable, threads, forward=_torch_forward(Path(folder), threads))
    return Servable(servable, threads, int8=settings.mlflask_quantize)


def load_servable(source: str | Path, settings: Settings) -> Servable:
    """The servable at `source`: a folder, or a `models:/` / `runs:/` URI of the configured MLflow (fetched into a
    temporary folder: once loaded, the model lives in memory)."""
    if isinstance(source, Path) or not str(source).startswith(("models:/", "runs:/")):
        return open_servable(Path(source), settings)
    with tempfile.TemporaryDirectory(prefix="servable-") as tmp:
        folder = fetch(Tracking(settings), str(source), Path(tmp), settings.mlflask_backend)
        return open_servable(folder, settings)


def _mlmodel(folder: Path) -> dict:
    try:
        return yaml.safe_load((folder / "MLmodel").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}


def _adapt_older(folder: Path) -> Path:
    """A servable assembled from an older version's transformers folder and its run's ONNX export (no torch)."""
    onnx = folder / "onnx"
    if not (onnx / FP32).is_file():
        raise NotServable(
            f"{folder} is a transformers model from before the servable, and its run has no ONNX export; "
            "train it again (job 3) to serve it"
        )
    weights = folder / "model"
    tokenizer_dir = folder / "components" / "tokenizer"
    try:
        config = json.loads((weights / "config.json").read_text())
        tokenizer_config = json.loads((tokenizer_dir / "tokenizer_config.json").read_text())
    except (OSError, ValueError) as exc:
        raise NotServable(f"{folder}: unreadable transformers model ({type(exc).__name__})") from None
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_dir / TOKENIZER))
    positions = int(config.get("max_position_embeddings", 512))
    length = tokenizer_config.get("model_max_length") or positions
    labels = config.get("id2label") or {"0": "negative", "1": "positive"}
    try:
        approved = json.loads((onnx / "parity.json").read_text())["int8"]["test_split"]["passed"] is True
    except (OSError, ValueError, KeyError, TypeError):
        approved = False
    target = folder / _OLDER
    target.mkdir(exist_ok=True)
    shutil.copy2(tokenizer_dir / TOKENIZER, target / TOKENIZER)
    for name in (FP32, INT8):
        if (onnx / name).is_file():
            shutil.copy2(onnx / name, target / name)
    pad = tokenizer_config.get("pad_token")
    (target / CONFIG).write_text(
        json.dumps(
            {
                "labels": [labels[str(i)] for i in range(len(labels))],
                "max_length": min(int(length), positions),
                "max_positions": positions,
                "vocab_size": int(config["vocab_size"]),
                "pad_id": (tokenizer.token_to_id(pad) if isinstance(pad, str) else None) or 0,
                "int8": approved and (target / INT8).is_file(),
                "note": "an older transformers version, served from its run's ONNX export",
            }
        )
    )
    return target


def _torch_forward(folder: Path, threads: int):
    """The explicit torch backend (MLFLASK_BACKEND=torch): the run's logged checkpoint, fp32. Needs torch."""
    run_id = _mlmodel(folder).get("run_id")
    checkpoint = folder / "checkpoint"
    if not (checkpoint / "config.json").is_file():
        if not run_id:
            raise NotServable(f"{folder}: no run to fetch a torch checkpoint from")
        raise NotServable(f"{folder}: fetch runs:/{run_id}/checkpoint beside the model for the torch backend")
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification

    if threads > 0:
        torch.set_num_threads(threads)
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint, use_safetensors=True).eval()

    def forward(batch: dict) -> np.ndarray:
        with torch.inference_mode():
            tensors = {k: torch.as_tensor(np.asarray(v)) for k, v in batch.items()}
            return model(**tensors).logits.float().numpy()

    forward.backend = "torch"
    return forward
