"""A tiny BERT for tests: built from a BertConfig with a word-level vocab written here. No network."""

from __future__ import annotations

import re
from pathlib import Path

from mlplatform.behaviour import INVARIANCE_PAIRS, OBVIOUS_NEGATIVE, OBVIOUS_POSITIVE, SAMPLE_TEXTS
from mlplatform.sources.sample import generate_sample


def build_tiny_bert(folder: Path, hidden: int = 32, layers: int = 2) -> Path:
    """Save a randomly initialised 2-layer, 32-wide BERT and its tokenizer to `folder`.

    The vocab covers the sample generator and the interface checks, so a few epochs on `sample` data
    teach it real sentiment words rather than [UNK].
    """
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    texts = list(generate_sample(400, seed=0)["train"]["text"]) + SAMPLE_TEXTS + OBVIOUS_POSITIVE + OBVIOUS_NEGATIVE
    texts += [t for pair in INVARIANCE_PAIRS for t in pair]
    words = sorted({w for t in texts for w in re.findall(r"[a-z]+", t.lower())})
    vocab = list(dict.fromkeys(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *".,!?'\"&;:-#", *words]))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab={word: i for i, word in enumerate(vocab)}, do_lower_case=True)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=256,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
