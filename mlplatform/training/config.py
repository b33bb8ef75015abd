"""Hyperparameters of job 3: declared once here, with their defaults, bounds and help.

`Settings` inherits these fields, so each is also an environment variable of the same name (LEARNING_RATE, ...),
a flag of `jobs/finetune.py` and a field of the Dagster launchpad.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError

from mlplatform.errors import ConfigError
from mlplatform.fields import describe_error, setting
from mlplatform.training.pretrained import DEFAULT_MODEL


class TrainConfig(BaseModel):
    """Defaults give a CPU run of a few minutes: 4,000 train rows, one epoch, 128 tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pretrained_model: str = setting(DEFAULT_MODEL, "Hugging Face id or folder; the default ships offline", min_length=1)
    learning_rate: float = setting(5e-5, "peak AdamW learning rate", gt=0, lt=1)
    epochs: int = setting(1, "passes over the training rows", ge=1)
    batch_size: int = setting(16, "rows per step", ge=1)
    max_length: int = setting(128, "tokens kept per review in training", ge=8, le=4096)
    inference_max_length: int = setting(
        256,
        "tokens kept per review when predicting (test metrics, logged model, MLFlask); capped at the model's",
        ge=8,
        le=4096,
    )
    evals_per_epoch: int = setting(2, "validation passes per epoch, logged by step", ge=1, le=100)
    weight_decay: float = setting(0.01, "AdamW weight decay", ge=0)
    warmup_ratio: float = setting(0.1, "share of steps with linear warm-up", ge=0, lt=1)
    max_grad_norm: float = setting(1.0, "gradient clipping norm; 0 = no clipping", ge=0)
    seed: int = setting(42, "seed for splits, the sample generator, init and shuffling")
    train_samples: int = setting(
        4000, "rows trained on, stratified (0 = all); the validation rows come on top of them", ge=0
    )
    test_samples: int = setting(1000, "cap on test rows, stratified (0 = all)", ge=0)
    val_fraction: float = setting(
        0.1, "validation rows, as a share of TRAIN_SAMPLES (of clean/ train when 0), held out first", gt=0, lt=1
    )
    group_by_length: bool = setting(
        False, "length-grouped batches: faster on long reviews of varied length; shuffled batches learn better"
    )

    @classmethod
    def of(cls, source: BaseModel, **overrides) -> TrainConfig:
        """The hyperparameters held by `source` (the settings), with `overrides`; a bad value names its variable."""
        values = {name: getattr(source, name) for name in cls.model_fields} | overrides
        try:
            return cls(**values)
        except ValidationError as exc:
            raise ConfigError(describe_error(exc, values, model=type(source))) from None

    def params(self) -> dict:
        return self.model_dump()

    @property
    def run_name(self) -> str:
        """Shows the key hyperparameters, so runs are told apart at a glance in the MLflow UI."""
        short = self.pretrained_model.rstrip("/").rsplit("/", 1)[-1]
        return f"{short}-lr{self.learning_rate:g}-ep{self.epochs}-bs{self.batch_size}-len{self.max_length}"


# What `jobs/finetune.py --sweep N` searches, next to the fields it varies: a float range (log-scaled where
# `log`), an integer range, or a list of choices. `--space file.yaml|json` overrides any entry.
SEARCH_SPACE: dict[str, dict] = {
    "learning_rate": {"low": 1e-5, "high": 1e-4, "log": True},
    "batch_size": {"choices": [16, 32]},
    "warmup_ratio": {"low": 0.0, "high": 0.2},
    "weight_decay": {"low": 0.0, "high": 0.1},
    "epochs": {"low": 1, "high": 3},
}
