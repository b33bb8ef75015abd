"""Hyperparameters of job 3. Their defaults, bounds and help live on the settings fields of the same names."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from mlplatform.settings import Settings


def _default(name: str):
    return Settings.model_fields[name].default


@dataclass(frozen=True)
class TrainConfig:
    """Defaults give a CPU run of a few minutes: 4,000 train rows, one epoch, 128 tokens."""

    pretrained_model: str = _default("pretrained_model")
    learning_rate: float = _default("learning_rate")
    epochs: int = _default("epochs")
    batch_size: int = _default("batch_size")
    max_length: int = _default("max_length")
    inference_max_length: int = _default("inference_max_length")
    evals_per_epoch: int = _default("evals_per_epoch")
    weight_decay: float = _default("weight_decay")
    warmup_ratio: float = _default("warmup_ratio")
    seed: int = _default("seed")
    train_samples: int = _default("train_samples")
    test_samples: int = _default("test_samples")
    val_fraction: float = _default("val_fraction")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides) -> TrainConfig:
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls)} | overrides)

    def validate(self) -> None:
        """Reject values that would crash or silently do nothing, naming the env var (the settings' own rules)."""
        for f in fields(self):
            Settings.parse_value(f.name, getattr(self, f.name))

    def params(self) -> dict:
        return asdict(self)

    @property
    def run_name(self) -> str:
        """Shows the key hyperparameters, so runs are told apart at a glance in the MLflow UI."""
        short = self.pretrained_model.rstrip("/").rsplit("/", 1)[-1]
        return f"{short}-lr{self.learning_rate:g}-ep{self.epochs}-bs{self.batch_size}-len{self.max_length}"
