"""The servable as an MLflow pyfunc: what `mlflow models serve`, `mlflow.pyfunc.load_model`, `spark_udf` and
MLServer's MLflow runtime load. The model carries its own code (the few modules below) and names onnxruntime
and tokenizers as its requirements, not torch."""

from __future__ import annotations

import shutil
import tempfile
from importlib.metadata import version
from pathlib import Path

import mlflow
import pandas as pd

from mlplatform.serving.servable import ARTIFACT, Servable

INPUT_EXAMPLE = ["A wonderful film, I loved every minute.", "Dull, predictable and far too long."]
# The modules the pyfunc imports, copied into the logged model so that any MLflow runtime can load it.
_CODE = ["__init__.py", "errors.py", "data/__init__.py", "data/text.py", "serving/__init__.py",
         "serving/servable.py", "serving/pyfunc.py", "serving/servable_model.py"]  # fmt: skip


def texts_of(model_input) -> list[str]:
    """The texts of a pyfunc input: a frame's `text` column (or its only column), a series, a list or a dict."""
    if isinstance(model_input, pd.DataFrame):
        if "text" in model_input.columns:
            column = model_input["text"]
        elif len(model_input.columns) == 1:
            column = model_input.iloc[:, 0]
        else:
            raise ValueError(f"expected a 'text' column, got {list(model_input.columns)}")
        return [str(text) for text in column.tolist()]
    if isinstance(model_input, dict):
        value = model_input.get("text", model_input.get("inputs"))
        return texts_of(value if not isinstance(value, str) else [value])
    if isinstance(model_input, str):
        return [model_input]
    return [str(text) for text in list(model_input)]


class ServableModel(mlflow.pyfunc.PythonModel):
    """mlflow.pyfunc's face of a `Servable`: a `text` column in; label, score and probability_<label> out."""

    _skip_type_hint_validation = True  # the signature logged with the model is the contract, not type hints

    def load_context(self, context):
        self.servable = Servable(context.artifacts[ARTIFACT])

    def predict(self, context, model_input, params=None):
        return self.servable.predict_frame(texts_of(model_input))


def pip_requirements() -> list[str]:
    """What the servable needs at run time, pinned to this environment: no torch, no transformers."""
    names = ["mlflow", "onnxruntime", "tokenizers", "numpy", "pandas", "beautifulsoup4"]
    return [f"{name}=={version(name)}" for name in names]


def _code_tree(target: Path) -> Path:
    package = Path(__file__).resolve().parents[1]
    for relative in _CODE:
        (target / "mlplatform" / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(package / relative, target / "mlplatform" / relative)
    return target / "mlplatform"


def log_servable(folder: Path, name: str = "model"):
    """Log the servable `folder` as the run's pyfunc model `name`; returns MLflow's ModelInfo."""
    from mlflow.models import infer_signature

    example = pd.DataFrame({"text": INPUT_EXAMPLE})
    output = Servable(folder).predict_frame(INPUT_EXAMPLE)
    with tempfile.TemporaryDirectory() as tmp:
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(Path(__file__).with_name("servable_model.py")),  # models-from-code: no pickle
            artifacts={ARTIFACT: str(folder)},
            code_paths=[str(_code_tree(Path(tmp)))],
            pip_requirements=pip_requirements(),
            signature=infer_signature(example, output),
            input_example=example,
        )
