"""A synthetic, deterministic, labelled movie-review generator, for demos and tests without internet.

The reviews are NOT real IMDB data. Each one mixes neutral filler with several sentiment phrases, some
negated ("not boring") and one of them often contrary to the overall label, so a classifier has to weigh
words rather than spot a single keyword. Reviews carry HTML (`<br />`, `<i>`), entities and mixed case,
so job 2 has real work to do.
"""

from __future__ import annotations

import random

import pandas as pd

_POSITIVE = [
    "brilliant",
    "moving",
    "gripping",
    "delightful",
    "superb",
    "heartfelt",
    "stunning",
    "witty",
    "masterful",
    "charming",
    "captivating",
    "beautifully shot",
    "wonderfully acted",
    "unforgettable",
    "hilarious",
    "touching",
    "clever",
    "a joy to watch",
    "thrilling",
    "excellent",
]
_NEGATIVE = [
    "boring",
    "dreadful",
    "clumsy",
    "tedious",
    "awful",
    "lifeless",
    "predictable",
    "painful to sit through",
    "badly acted",
    "pointless",
    "incoherent",
    "dull",
    "a waste of time",
    "forgettable",
    "cheap-looking",
    "overlong",
    "laughable",
    "terrible",
    "shallow",
    "mediocre",
]
_SUBJECTS = [
    "The plot",
    "The acting",
    "The direction",
    "The script",
    "The soundtrack",
    "The cinematography",
    "The ending",
    "The lead actress",
    "The villain",
    "The dialogue",
    "The pacing",
    "The special effects",
    "The cast",
    "The editing",
    "The first act",
    "The final twist",
]
_FILLER = [
    "I saw it on a rainy Sunday with my brother.",
    "It runs a little over two hours.",
    "The film is loosely based on a novel from the seventies.",
    "My local cinema was half empty.",
    "It was released in {year}.",
    "The director also made a documentary about {topic}.",
    "I watched the director's cut &amp; the theatrical version.",
    "Some scenes were filmed in {place}.",
    "My friend called it &quot;a {genre} for grown-ups&quot;.",
    "There is a cameo from a famous {job}.",
]
_TITLES = [
    "Night Harbor",
    "The Last Orchard",
    "Glass Rivers",
    "Paper Kings",
    "Winter Signal",
    "Iron Meadow",
    "Blue Alibi",
    "The Quiet Engine",
    "Salt &amp; Smoke",
    "Dust Protocol",
    "Echo Street",
    "Red Lantern",
]
_GENRES = ["thriller", "comedy", "drama", "western", "horror film", "romance", "war movie", "musical"]
_PLACES = ["Lisbon", "Montreal", "Iceland", "Marseille", "Kyoto", "Glasgow", "New Mexico", "Naples"]
_TOPICS = ["jazz", "fishermen", "chess", "a lighthouse", "street food", "the moon landing"]
_JOBS = ["chef", "footballer", "singer", "painter", "astronaut"]
_INTENSIFIERS = ["", "", "really ", "truly ", "quite ", "absolutely ", "rather ", "utterly "]


def _phrase(rng: random.Random, positive: bool) -> str:
    """One sentiment sentence; a third are negations of the opposite pole ("not boring" reads positive)."""
    subject = rng.choice(_SUBJECTS)
    if rng.random() < 0.33:
        word = rng.choice(_NEGATIVE if positive else _POSITIVE)
        return f"{subject} was not {word} at all."
    word = rng.choice(_POSITIVE if positive else _NEGATIVE)
    return f"{subject} was {rng.choice(_INTENSIFIERS)}{word}."


def _decorate(rng: random.Random, sentence: str) -> str:
    roll = rng.random()
    if roll < 0.15:
        return sentence.upper()
    if roll < 0.3:
        words = sentence.split(" ")
        i = rng.randrange(len(words))
        words[i] = f"<i>{words[i]}</i>" if rng.random() < 0.5 else f"<b>{words[i]}</b>"
        return " ".join(words)
    return sentence


def _review(rng: random.Random, positive: bool) -> str:
    sentences = [_phrase(rng, positive) for _ in range(rng.randint(2, 4))]
    if rng.random() < 0.6:
        sentences.append(_phrase(rng, not positive))  # a contrary note, outweighed by the rest
    fill = [
        rng.choice(_FILLER).format(
            year=rng.randint(1960, 2024),
            topic=rng.choice(_TOPICS),
            place=rng.choice(_PLACES),
            genre=rng.choice(_GENRES),
            job=rng.choice(_JOBS),
        )
        for _ in range(rng.randint(1, 3))
    ]
    body = sentences + fill
    rng.shuffle(body)
    title = rng.choice(_TITLES)
    opening = f"I watched &quot;{title}&quot; last week."
    parts = [opening] + [_decorate(rng, s) for s in body]
    return rng.choice([" ", " <br /><br />", "<br />", "  "]).join(parts)


def generate_sample(size: int, seed: int = 42) -> dict[str, pd.DataFrame]:
    """`size` reviews, balanced by label, 80% train and 20% test, identical for the same seed."""
    rng = random.Random(seed)
    n_test = max(2, size // 5)
    frames = {}
    for split, count in (("train", size - n_test), ("test", n_test)):
        labels = [i % 2 for i in range(count)]
        rng.shuffle(labels)
        frames[split] = pd.DataFrame(
            {
                "id": [f"sample_{split}_{i}" for i in range(count)],
                "text": [_review(rng, bool(label)) for label in labels],
                "label": labels,
            }
        )
    return frames
