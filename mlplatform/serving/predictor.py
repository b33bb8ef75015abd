"""One predictor: load a logged text classifier once and predict raw texts, fast, on CPU or GPU.

The forward pass is torch (fp32, or dynamic int8) or ONNX Runtime (fp32, or int8); tokenising, length-sorted
chunks and padding are the same for both. An ONNX export is used only after it matched torch on the model's
input example and a few more texts; otherwise the predictor stays on torch and says why in `backend_note`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from mlplatform.data.cleaning import clean_text
from mlplatform.serving import onnx as onnx_backend
from mlplatform.serving.behaviour import OBVIOUS_NEGATIVE, OBVIOUS_POSITIVE, SAMPLE_TEXTS

log = logging.getLogger(__name__)
_MAX_PADDING = 1.5  # padded tokens / real tokens allowed in one forward pass
_CHECK_TEXTS = [*SAMPLE_TEXTS, *OBVIOUS_POSITIVE, *OBVIOUS_NEGATIVE, "ok", "The plot " * 100]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities from logits, over the last axis (shifted by the max, so no overflow)."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def token_counts(tokenizer, texts: list[str]) -> list[int]:
    """Tokens of each text as the model sees it (cleaned as `predict` cleans it), before truncation."""
    encoded = tokenizer([clean_text(text) for text in texts], truncation=False, verbose=False)
    return [len(ids) for ids in encoded["input_ids"]]


def _set_threads(threads: int) -> None:
    import torch

    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def _input_example(root: Path) -> list[str]:
    """The strings of the MLflow model's input example, if it has one."""
    path = root / "input_example.json"
    if not path.is_file():
        return []
    found: list[str] = []

    def walk(value) -> None:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    try:
        walk(json.loads(path.read_text()))
    except ValueError:
        return []
    return [text for text in found if text not in ("text", "inputs")][:32]


class _TorchForward:
    def __init__(self, model):
        self.model = model

    def __call__(self, batch: dict) -> np.ndarray:
        import torch

        with torch.inference_mode():
            tensors = {k: torch.as_tensor(np.asarray(v)) for k, v in batch.items()}
            return self.model(**tensors).logits.float().numpy()


class Predictor:
    """A sequence classifier with its tokenizer, from an MLflow transformers-flavor model folder."""

    def __init__(
        self,
        model_dir: str | Path,
        quantize: bool | None = False,
        batch_size: int = 32,
        threads: int = 0,
        backend: str = "torch",
        onnx_dir: str | Path | None = None,
    ):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        _set_threads(threads)
        root = Path(model_dir)
        weights = root / "model" if (root / "model" / "config.json").is_file() else root
        tokenizer_dir = root / "components" / "tokenizer"
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir if tokenizer_dir.is_dir() else weights)
        model = AutoModelForSequenceClassification.from_pretrained(weights).eval()
        config = model.config
        self.batch_size = batch_size
        self.max_positions = getattr(config, "max_position_embeddings", 512)
        self.max_length = min(self.tokenizer.model_max_length or self.max_positions, self.max_positions)
        self.labels = [config.id2label[i] for i in range(config.num_labels)]
        self.vocab_size = config.vocab_size
        self.quantized = False
        self.backend_note = ""
        self._forward = None
        if backend == "onnx":
            folder = Path(onnx_dir) if onnx_dir else root / "onnx"
            if quantize is None:  # auto: int8 only where job 3 checked it against fp32 on the labelled test split
                quantize = onnx_backend.int8_approved(folder)
            self._forward = self._onnx(model, folder, root, quantize, threads)
        if self._forward is None:
            self.quantized = bool(quantize)
            if quantize:
                model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
            self._torch_model = model
            self._forward = _TorchForward(model)  # not a bound method: no cycle, so a retired model is freed at once
            self.backend = "torch-int8" if quantize else "torch"

    def _torch_forward(self, batch: dict) -> np.ndarray:
        return _TorchForward(self._torch_model)(batch)

    def _onnx(self, model, folder: Path, root: Path, quantize: bool, threads: int):
        """An ORT forward that matched torch, or None (with the reason in `backend_note`).

        int8 that job 3 refused, or that flips a clear decision here, gives way to fp32 ONNX, not to torch."""
        self._torch_model = model
        try:
            if not onnx_backend.available():
                raise RuntimeError("onnxruntime is not installed")
            fp32 = folder / onnx_backend.FP32
            if not fp32.is_file():
                onnx_backend.export(model, self.tokenizer, folder)
            refused = onnx_backend.int8_refused(folder) if quantize else None
            attempts = [(True, folder / onnx_backend.INT8)] if quantize and not refused else []
            notes = [refused] if refused else []
            for quantized, path in [*attempts, (False, fp32)]:
                if quantized and not path.is_file():
                    onnx_backend.quantize(fp32, path)
                forward = onnx_backend.OrtForward(path, threads)
                parity = onnx_backend.compare(self._torch_forward, forward, self._check_batches(root))
                verdict = "matched" if parity.passes(quantized) else "disagreed with"
                notes.append(
                    f"ONNX {'int8' if quantized else 'fp32'} {verdict} torch on {parity.texts} texts: "
                    f"argmax agreement {parity.argmax_agreement:.3f} "
                    f"({parity.decisive_agreement:.3f} on clear decisions), max logit diff {parity.max_logit_diff:.2g}"
                )
                if parity.passes(quantized):
                    break
            else:
                self.backend_note = "; ".join(notes) + "; serving torch"
                log.warning(self.backend_note)
                return None
        except Exception as exc:  # noqa: BLE001 - any export or runtime failure means: serve with torch
            self.backend_note = f"ONNX export or load failed ({type(exc).__name__}: {str(exc)[:200]}); serving torch"
            log.warning(self.backend_note)
            return None
        self.quantized = quantized
        self.backend = "onnx-int8" if quantized else "onnx"
        self.backend_note = "; ".join(notes)
        if quantize and not quantized:
            log.warning("int8 not served: %s", self.backend_note)
        del self._torch_model  # only ONNX Runtime serves now: free the torch weights
        return forward

    def _check_batches(self, root: Path) -> list[dict]:
        texts = _input_example(root) + _CHECK_TEXTS
        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_length)
        return [self._pad(encoded, chunk) for chunk in self._chunks([len(ids) for ids in encoded["input_ids"]])]

    def _chunks(self, lengths: list[int]) -> list[list[int]]:
        """Indices sorted by length, cut where padding to the longest would waste over a third of the work."""
        order = sorted(range(len(lengths)), key=lengths.__getitem__)
        chunks: list[list[int]] = []
        current: list[int] = []
        tokens = 0
        for i in order:
            n = lengths[i]
            if current and (len(current) == self.batch_size or (len(current) + 1) * n > _MAX_PADDING * (tokens + n)):
                chunks.append(current)
                current, tokens = [], 0
            current.append(i)
            tokens += n
        return chunks + [current] if current else chunks

    def _pad(self, encoded, chunk: list[int]) -> dict:
        return self.tokenizer.pad(
            {key: [encoded[key][i] for i in chunk] for key in encoded.keys()}, return_tensors="np"
        )

    def predict(self, texts: list[str]) -> list[dict]:
        """[{"label", "score", "probabilities": {label: p}}] in the order of `texts`, each cleaned as job 2
        cleaned the training data (a review posted with `<br />` tags reads as it did in training)."""
        texts = [clean_text(text) for text in texts]
        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_length)
        results: list[dict | None] = [None] * len(texts)
        for chunk in self._chunks([len(ids) for ids in encoded["input_ids"]]):
            logits = self._forward(dict(self._pad(encoded, chunk)))
            probabilities = softmax(logits).tolist()
            for i, row in zip(chunk, probabilities, strict=True):
                best = max(range(len(row)), key=row.__getitem__)
                results[i] = {
                    "label": self.labels[best],
                    "score": row[best],
                    "probabilities": dict(zip(self.labels, row, strict=True)),
                }
        return results

    def predict_ids(self, input_ids: list[list[int]], attention_mask: list[list[int]]) -> list[int]:
        """Class indices for pre-tokenised input (the original sample project's legacy body)."""
        batch = {"input_ids": np.array(input_ids), "attention_mask": np.array(attention_mask)}
        if "token_type_ids" in self.tokenizer.model_input_names:
            batch["token_type_ids"] = np.zeros_like(batch["input_ids"])
        return self._forward(batch).argmax(-1).tolist()
