"""Hyperparameters of job 3, each tied to the env var that sets it."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from mlplatform.errors import ConfigError
from mlplatform.pretrained import DEFAULT_MODEL

# (field, env var, help); defaults live on the dataclass. Order is the order of --help.
ENV_VARS = [
    ("pretrained_model", "PRETRAINED_MODEL", "Hugging Face model id or local folder"),
    ("learning_rate", "LEARNING_RATE", "peak learning rate (AdamW)"),
    ("epochs", "EPOCHS", "passes over the training rows"),
    ("batch_size", "BATCH_SIZE", "rows per step"),
    ("max_length", "MAX_LENGTH", "tokens kept per review (longer ones are truncated)"),
    ("weight_decay", "WEIGHT_DECAY", "AdamW weight decay"),
    ("warmup_ratio", "WARMUP_RATIO", "share of steps with linear warm-up"),
    ("seed", "SEED", "seed for sampling, splits, init and shuffling"),
    ("train_samples", "TRAIN_SAMPLES", "cap on train rows, stratified (0 = all)"),
    ("test_samples", "TEST_SAMPLES", "cap on test rows, stratified (0 = all)"),
    ("val_fraction", "VAL_FRACTION", "share of train held out for validation, stratified"),
]


@dataclass(frozen=True)
class TrainConfig:
    """Defaults give a CPU run of a few minutes: 4,000 train rows, one epoch, 128 tokens."""

    pretrained_model: str = DEFAULT_MODEL
    learning_rate: float = 5e-5
    epochs: int = 1
    batch_size: int = 16
    max_length: int = 128
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    seed: int = 42
    train_samples: int = 4000
    test_samples: int = 1000
    val_fraction: float = 0.1

    def validate(self) -> None:
        """Reject values that would crash or silently do nothing, naming the env var."""
        env = {f: e for f, e, _ in ENV_VARS}
        checks = [
            ("learning_rate", 0 < self.learning_rate < 1, "must be > 0 and < 1"),
            ("epochs", self.epochs >= 1, "must be >= 1"),
            ("batch_size", self.batch_size >= 1, "must be >= 1"),
            ("max_length", 8 <= self.max_length <= 4096, "must be between 8 and 4096"),
            ("weight_decay", self.weight_decay >= 0, "must be >= 0"),
            ("warmup_ratio", 0 <= self.warmup_ratio < 1, "must be >= 0 and < 1"),
            ("train_samples", self.train_samples >= 0, "must be >= 0 (0 = all)"),
            ("test_samples", self.test_samples >= 0, "must be >= 0 (0 = all)"),
            ("val_fraction", 0 < self.val_fraction < 1, "must be > 0 and < 1"),
            ("pretrained_model", bool(self.pretrained_model.strip()), "must not be empty"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ConfigError(f"{env[name]}={getattr(self, name)!r} {rule}")

    def params(self) -> dict:
        return asdict(self)

    @property
    def run_name(self) -> str:
        """Shows the key hyperparameters, so runs are told apart at a glance in the MLflow UI."""
        short = self.pretrained_model.rstrip("/").rsplit("/", 1)[-1]
        return f"{short}-lr{self.learning_rate:g}-ep{self.epochs}-bs{self.batch_size}-len{self.max_length}"
