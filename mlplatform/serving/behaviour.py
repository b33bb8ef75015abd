"""Interface checks for a deployed model: the response schema, then behavioural tests.

Directional: obviously positive reviews must come out positive, obviously negative ones negative.
Invariance: swapping the film's title must not flip a label.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from mlplatform.cli import table
from mlplatform.errors import ConfigError, PlatformError

LABELS = {"negative", "positive"}

SAMPLE_TEXTS = [
    "Very good movie!",
    "Not really enjoyable, not interesting at all, to be honest it has nothing",
    "I was looking forward to this movie. Trustworthy actors",
    "What a nasty cynical film... Every character is petty, the plot is a string of cheap shocks held together by "
    "nothing, the jokes are mean without being funny, and the last half hour drags on as if the director hoped we "
    "would mistake boredom for depth. I have rarely been so glad to see the credits roll.",
]

OBVIOUS_POSITIVE = [
    "A brilliant, moving film. The acting was superb and the ending was unforgettable. I loved it.",
    "Wonderfully acted and beautifully shot, truly excellent and a joy to watch.",
]
OBVIOUS_NEGATIVE = [
    "A dreadful, boring film. The acting was awful and the plot was a waste of time.",
    "Tedious, lifeless and badly acted. The script was terrible and the ending was laughable.",
]
INVARIANCE_PAIRS = [
    (
        "I watched Night Harbor last week. The plot was brilliant and the cast was superb.",
        "I watched Paper Kings last week. The plot was brilliant and the cast was superb.",
    ),
]


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


def schema_errors(response: dict, texts: list[str]) -> list[str]:
    """What is wrong with a /predict response, if anything."""
    predictions = response.get("predictions")
    if not isinstance(predictions, list):
        return ["'predictions' is not a list"]
    errors = []
    if len(predictions) != len(texts):
        errors.append(f"{len(predictions)} predictions for {len(texts)} texts")
    for i, p in enumerate(predictions):
        if not isinstance(p, dict) or p.get("label") not in LABELS:
            errors.append(f"prediction {i}: label {p.get('label') if isinstance(p, dict) else p!r} not in {LABELS}")
            continue
        score, probabilities = p.get("score"), p.get("probabilities") or {}
        if not isinstance(score, float | int) or not 0 <= score <= 1:
            errors.append(f"prediction {i}: score {score!r} is not in [0, 1]")
        if set(probabilities) != LABELS or abs(sum(probabilities.values()) - 1) > 1e-3:
            errors.append(f"prediction {i}: probabilities {probabilities} do not sum to 1 over {sorted(LABELS)}")
    return errors


def behaviour_checks(predict) -> list[Check]:
    """Run the directional and invariance checks through `predict(texts) -> response`."""
    checks = []
    for expected, texts in (("positive", OBVIOUS_POSITIVE), ("negative", OBVIOUS_NEGATIVE)):
        for text, p in zip(texts, predict(texts)["predictions"], strict=True):
            checks.append(
                Check(f"obviously {expected}", p["label"] == expected, f"{p['label']} ({p['score']:.2f}): {text[:60]}")
            )
    for a, b in INVARIANCE_PAIRS:
        pa, pb = predict([a, b])["predictions"]
        checks.append(
            Check("title swap keeps the label", pa["label"] == pb["label"], f"{pa['label']} vs {pb['label']}")
        )
    return checks


def parse_texts(raw: str) -> list[str]:
    """A JSON list of strings, or newline-separated texts. Never evaluated as code."""
    raw = raw.strip()
    if raw.startswith("["):
        try:
            texts = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"INPUT_TEXTS looks like JSON but is not valid: {exc}") from None
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise ConfigError("INPUT_TEXTS as JSON must be a list of strings")
    else:
        texts = [line.strip() for line in raw.splitlines() if line.strip()]
    if not texts:
        raise ConfigError("INPUT_TEXTS is empty")
    return texts


def texts_to_check(raw: str | None) -> list[str]:
    """INPUT_TEXTS (or the launchpad's texts) parsed, else the sample project's four sentences."""
    return parse_texts(raw) if raw else list(SAMPLE_TEXTS)


@dataclass
class InterfaceReport:
    """What job 5 found: the answers to the texts, then the behavioural checks."""

    name: str
    texts: list[str]
    response: dict
    checks: list[Check]

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]


def check_interface(client, name: str, texts: list[str], behaviour: bool = True) -> InterfaceReport:
    """Job 5: POST `texts` to the model `name` served behind `client` (an MLFlaskClient), check the response
    schema (a PlatformError if wrong), then, with `behaviour`, the directional and invariance checks.
    The CLI job, the `served_predictions` asset and its `behaviour` check all call this."""
    response = client.predict(name, texts) if texts else {"predictions": []}
    errors = schema_errors(response, texts)
    if errors:
        raise PlatformError("response schema: " + "; ".join(errors))
    checks = behaviour_checks(lambda batch: client.predict(name, batch)) if behaviour else []
    return InterfaceReport(name, texts, response, checks)


def predictions_table(texts: list[str], predictions: list[dict]) -> str:
    """Text (shortened), label and score per line, as jobs and the pipeline print them."""

    rows = [
        [t if len(t) <= 70 else t[:67] + "...", p["label"], f"{p['score']:.3f}"]
        for t, p in zip(texts, predictions, strict=True)
    ]
    return table(rows, ["text", "label", "score"])
