"""The servable's model file (MLflow models-from-code): loading the model runs this file, not a pickle."""

from mlflow.models import set_model

from mlplatform.serving.pyfunc import ServableModel

set_model(ServableModel())
