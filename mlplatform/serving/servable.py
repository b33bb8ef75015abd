"""The servable: the one model that job 3 logs, the registry holds and every runtime serves.

A folder holds an ONNX graph (fp32, and int8 where job 3 approved it on its test split), the tokenizer as one
`tokenizer.json` and `servable.json` (labels, inference length, which graph to serve). Predicting cleans each text
as job 2 cleaned the training data, tokenises it, runs length-sorted chunks through ONNX Runtime and returns
probabilities. It needs numpy, tokenizers, onnxruntime and BeautifulSoup: no torch, no transformers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from mlplatform.data.text import clean_text
from mlplatform.errors import PlatformError

CONFIG, TOKENIZER = "servable.json", "tokenizer.json"
ARTIFACT = "servable"  # the servable folder's key among the pyfunc model's artifacts (artifacts/servable/)
FP32, INT8 = "model.onnx", "model-int8.onnx"
_MAX_PADDING = 1.5  # padded tokens / real tokens allowed in one forward pass


class NotServable(PlatformError):
    """A folder or URI that holds no servable (and no older model the loader can serve)."""


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities from logits, over the last axis (shifted by the max, so no overflow)."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


class OrtForward:
    """An ONNX Runtime session that takes a numpy batch of token ids and returns logits."""

    def __init__(self, path: Path, threads: int = 0):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads > 0:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # No spinning between runs: a server's request threads need the cores ORT's idle threads would burn
        # (MLFlask, measured: 10.2 -> 9.3 ms of CPU per request, the same throughput).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self._session.get_inputs()]

    def __call__(self, batch: dict) -> np.ndarray:
        feed = {name: np.asarray(batch[name], dtype=np.int64) for name in self.input_names}
        return self._session.run(["logits"], feed)[0]


class Servable:
    """Predicts raw texts with the graph and tokenizer of a servable folder.

    `int8`: None serves what `servable.json` chose (int8 only where job 3 approved it), False forces fp32.
    `forward` replaces the ONNX graph (the explicit torch backend, and tests); it takes and returns what
    `OrtForward` does."""

    def __init__(self, folder: str | Path, threads: int = 0, int8: bool | None = None, forward=None):
        from tokenizers import Tokenizer

        self.folder = Path(folder)
        try:
            config = json.loads((self.folder / CONFIG).read_text())
            self.labels: list[str] = list(config["labels"])
            self.max_length = int(config["max_length"])
            self.max_positions = int(config.get("max_positions", self.max_length))
            self.vocab_size = int(config["vocab_size"])
            self._pad_id = int(config.get("pad_id", 0))
            self.batch_size = int(config.get("batch_size", 32))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise NotServable(f"{self.folder} has no valid {CONFIG} ({type(exc).__name__}: {exc})") from None
        self.check = config.get("check", {})  # job 3's parity results, for the record
        self.tokenizer = Tokenizer.from_file(str(self.folder / TOKENIZER))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_length)
        # Counting needs the untruncated length; a second instance keeps the two settings apart across threads.
        self._counter = Tokenizer.from_file(str(self.folder / TOKENIZER))
        self._counter.no_padding()
        self._counter.no_truncation()
        # None: int8 where job 3 approved it; True: int8 wherever the graph exists (even refused); False: fp32.
        self.quantized = bool(config.get("int8")) if int8 is None else bool(int8 and (self.folder / INT8).is_file())
        if forward is not None:
            self._forward, self.backend = forward, getattr(forward, "backend", "custom")
            self.quantized = False
        else:
            self._forward = OrtForward(self.folder / (INT8 if self.quantized else FP32), threads)
            self.backend = "onnx-int8" if self.quantized else "onnx"
        self.backend_note = config.get("note", "")

    # --- tokenising -----------------------------------------------------------------------------------------------

    def _encode(self, texts: list[str]) -> list:
        return self.tokenizer.encode_batch([clean_text(text) for text in texts])

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Tokens of each text as the model sees it (cleaned as `predict` cleans it), before truncation."""
        return [len(e.ids) for e in self._counter.encode_batch([clean_text(text) for text in texts])]

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

    def _pad(self, encodings: list, chunk: list[int]) -> dict:
        width = max(len(encodings[i].ids) for i in chunk)
        ids = np.full((len(chunk), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(chunk), width), dtype=np.int64)
        types = np.zeros((len(chunk), width), dtype=np.int64)
        for row, i in enumerate(chunk):
            encoding = encodings[i]
            n = len(encoding.ids)
            ids[row, :n], mask[row, :n], types[row, :n] = encoding.ids, encoding.attention_mask, encoding.type_ids
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}

    # --- predicting -----------------------------------------------------------------------------------------------

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """One row of class probabilities per text, in the order of `texts` (columns in `labels` order)."""
        encodings = self._encode(texts)
        out = np.empty((len(texts), len(self.labels)), dtype=np.float64)
        for chunk in self._chunks([len(e.ids) for e in encodings]):
            logits = np.asarray(self._forward(self._pad(encodings, chunk)), dtype=np.float64)
            out[chunk] = softmax(logits)
        return out

    def predict(self, texts: list[str]) -> list[dict]:
        """[{"label", "score", "probabilities": {label: p}}] in the order of `texts`."""
        results = []
        for row in self.probabilities(texts).tolist():
            best = max(range(len(row)), key=row.__getitem__)
            results.append(
                {
                    "label": self.labels[best],
                    "score": row[best],
                    "probabilities": dict(zip(self.labels, row, strict=True)),
                }
            )
        return results

    def predict_frame(self, texts: list[str]) -> pd.DataFrame:
        """The servable's MLflow signature: label, score and probability_<label> per text."""
        probabilities = self.probabilities(texts)
        best = probabilities.argmax(axis=1) if len(texts) else np.empty(0, dtype=int)
        frame = pd.DataFrame(
            {
                # object, not pandas 3's string dtype: codecs such as MLServer's pandas codec know only numpy's
                "label": pd.Series([self.labels[i] for i in best], dtype=object),
                "score": probabilities[np.arange(len(best)), best] if len(texts) else np.empty(0),
            }
        )
        for i, name in enumerate(self.labels):
            frame[f"probability_{name}"] = probabilities[:, i]
        return frame

    def predict_ids(self, input_ids: list[list[int]], attention_mask: list[list[int]]) -> list[int]:
        """Class indices for pre-tokenised input (the original sample project's legacy body)."""
        ids = np.array(input_ids, dtype=np.int64)
        batch = {"input_ids": ids, "attention_mask": np.array(attention_mask, dtype=np.int64)}
        batch["token_type_ids"] = np.zeros_like(ids)
        return np.asarray(self._forward(batch)).argmax(-1).tolist()
