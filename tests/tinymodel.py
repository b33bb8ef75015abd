"""A tiny BERT for tests: built from a BertConfig with a word-level vocab written here. No network."""

from __future__ import annotations

import re
from pathlib import Path

from mlplatform.data.sources.sample import generate_sample
from mlplatform.serving.behaviour import INVARIANCE_PAIRS, OBVIOUS_NEGATIVE, OBVIOUS_POSITIVE, SAMPLE_TEXTS


def build_tiny_bert(folder: Path, hidden: int = 32, layers: int = 2) -> Path:
    """Save a randomly initialised 2-layer, 32-wide BERT and its tokenizer to `folder`.

    The vocab covers the sample generator and the interface checks, so none of their words is [UNK].
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
    model = BertModel(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_sentiment_bert(folder: Path, epochs: int = 8, seed: int = 0) -> Path:
    """The tiny BERT taught plain sentiment on easy generated reviews, saved as a classifier.

    It stands in for a real pretrained model that already knows sentiment words, so fine-tuning it on the
    harder `sample` data in a few seconds still yields a model that passes the behavioural checks.
    """
    import pandas as pd
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

    from tests.datafiles import easy_reviews_csv

    base = build_tiny_bert(folder / "base")
    frame = pd.read_csv(easy_reviews_csv(folder / "easy.csv", rows=480, seed=seed))
    tokenizer = AutoTokenizer.from_pretrained(base)
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1}
    )
    texts, labels = list(frame["text"]), torch.tensor(frame["label"].to_numpy())
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    steps = epochs * -(-len(texts) // 16)
    schedule = get_linear_schedule_with_warmup(optimizer, steps // 10, steps)
    model.train()
    for _ in range(epochs):
        for i in torch.randperm(len(texts)).split(16):
            batch = tokenizer([texts[j] for j in i], padding=True, return_tensors="pt")
            model(**batch, labels=labels[i]).loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
    out = folder / "sentiment"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
