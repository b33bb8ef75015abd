"""One predictor: load a logged text classifier once and predict raw texts, fast, on CPU or GPU."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)
_MAX_PADDING = 1.5  # padded tokens / real tokens allowed in one forward pass


def _set_threads(threads: int) -> None:
    import torch

    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


class Predictor:
    """A sequence classifier with its tokenizer, from an MLflow transformers-flavor model folder.

    Texts are tokenised once, sorted by token length and cut into chunks whose padding stays small, so
    short reviews never pay for a long one; the forward passes run under `torch.inference_mode`.
    `quantize=True` applies dynamic int8 quantization to the linear layers (CPU): a little accuracy for speed.
    """

    def __init__(self, model_dir: str | Path, quantize: bool = False, batch_size: int = 32, threads: int = 0):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        _set_threads(threads)
        root = Path(model_dir)
        weights = root / "model" if (root / "model" / "config.json").is_file() else root
        tokenizer_dir = root / "components" / "tokenizer"
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir if tokenizer_dir.is_dir() else weights)
        model = AutoModelForSequenceClassification.from_pretrained(weights).eval()
        if quantize:
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        self.model = model
        self.quantized = quantize
        self.batch_size = batch_size
        positions = getattr(model.config, "max_position_embeddings", 512)
        self.max_positions = positions
        self.max_length = min(self.tokenizer.model_max_length or positions, positions)
        self.backend = "torch"
        self.labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
        self.vocab_size = model.config.vocab_size

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

    def predict(self, texts: list[str]) -> list[dict]:
        """[{"label", "score", "probabilities": {label: p}}] in the order of `texts`."""
        import torch

        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_length)
        results: list[dict | None] = [None] * len(texts)
        with torch.inference_mode():
            for chunk in self._chunks([len(ids) for ids in encoded["input_ids"]]):
                batch = self.tokenizer.pad(
                    {key: [encoded[key][i] for i in chunk] for key in encoded.keys()}, return_tensors="pt"
                )
                probabilities = torch.softmax(self.model(**batch).logits.float(), dim=-1).tolist()
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
        import torch

        with torch.inference_mode():
            logits = self.model(input_ids=torch.tensor(input_ids), attention_mask=torch.tensor(attention_mask)).logits
        return logits.argmax(-1).tolist()
