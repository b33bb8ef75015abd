"""Request and response bodies as pydantic models: validation, error messages and /openapi.json come from here.

Protocols where they exist: MLflow's scoring protocol (/invocations) and the Open Inference Protocol (KServe V2,
/v2/...). The legacy Saagie body (`data`: [input_ids, attention_mask]) is kept as it was.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mlplatform import names
from mlplatform.errors import ConfigError

# For the OpenAPI document; the rule itself (reserved aliases and all) is the registry's, checked below.
NAME_PATTERN = f"^{names.NAME_PATTERN}$"
MODEL_URI_PATTERN = f"^models:/{names.NAME_PATTERN}(/[0-9]{{1,9}}|@{names.ALIAS_PATTERN})$"
Texts = list[str]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- common -----------------------------------------------------------------------------------------------------


class Error(BaseModel):
    error: str


class MlflowError(BaseModel):
    """MLflow's error shape, on /invocations."""

    error_code: str = Field(examples=["BAD_REQUEST"])
    message: str


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    models: int


# --- deployments --------------------------------------------------------------------------------------------------


class DeployRequest(_Strict):
    """A registry reference to serve, or a run (or the best run by a metric) to promote first."""

    name: str = Field(
        pattern=NAME_PATTERN,
        max_length=names.NAME_MAX,
        description="served name (and registered model name when promoting)",
    )
    model_uri: str | None = Field(None, pattern=MODEL_URI_PATTERN, examples=["models:/movie-sentiment@champion"])
    run_id: str | None = Field(None, min_length=1, description="promote this FINISHED run of MLFLOW_EXP_NAME")
    metric: str | None = Field(None, min_length=1, description="promote the best FINISHED run by this metric")

    @field_validator("model_uri")
    @classmethod
    def _registry_reference(cls, uri: str | None) -> str | None:
        try:
            return uri if uri is None else names.ModelRef.parse(uri).uri
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _one_source(self) -> DeployRequest:
        if self.model_uri is not None and (self.run_id is not None or self.metric is not None):
            raise ValueError("give either 'model_uri', or 'run_id' / 'metric', not both")
        if self.model_uri is None and self.run_id is None and self.metric is None:
            raise ValueError("give 'model_uri' (a registry reference), 'run_id' (that run) or 'metric' (the best run)")
        return self


class WorkersLoaded(BaseModel):
    """After a deploy: the workers of this MLFlask that hold the new version, and those that do not yet."""

    workers: int
    loaded: int
    pending: list[int] = Field(description="pids of workers still loading it (none: every worker serves it)")


class ShadowPolicy(_Strict):
    model_uri: str = Field(pattern=MODEL_URI_PATTERN, examples=["models:/movie-sentiment@challenger"])
    share: float = Field(ge=0, le=1, description="share of requests also sent to the shadow (never answered by it)")


CANARY_MAJORITY = 0.5  # above it the canary answers most requests: a promotion in all but name, asked for explicitly


class CanaryPolicy(_Strict):
    model_uri: str = Field(pattern=MODEL_URI_PATTERN, examples=["models:/movie-sentiment@challenger"])
    weight: float = Field(ge=0, le=1, description="share of requests it answers; 0 removes it (rollback)")
    majority: bool = Field(False, description=f"must be true for a weight above {CANARY_MAJORITY}")

    @model_validator(mode="after")
    def _majority_is_asked_for(self):
        if self.weight > CANARY_MAJORITY and not self.majority:
            raise ValueError(
                f"a canary weight above {CANARY_MAJORITY} gives it most of the traffic; "
                'send "majority": true to mean it (or move the champion alias: job 4)'
            )
        return self


class TrafficRequest(_Strict):
    """A served name's shadow and canary: a policy sets one, null removes it, an absent key leaves it."""

    shadow: ShadowPolicy | None = None
    canary: CanaryPolicy | None = None


class ModelInfo(BaseModel):
    name: str
    model_uri: str
    registered_model: str
    version: str
    alias: str | None = None
    run_id: str
    run_name: str = ""
    experiment_id: str = ""
    metrics: dict[str, float] = {}
    params: dict[str, str] = {}
    tags: dict[str, str] = {}
    deployed_at: str
    quantized: bool = False
    backend: str = Field("torch", description="onnx, onnx-int8, torch or torch-int8")
    backend_note: str = Field("", description="why this backend: the ONNX parity check, or why it fell back")
    follow_error: str | None = None
    shadow: dict | None = Field(None, description="shadow policy {model_uri, share}; GET adds agreement so far")
    canary: dict | None = Field(None, description="canary policy {model_uri, weight}")
    card: str | None = Field(None, description="Markdown model card (GET /models/{name} only)")
    workers: WorkersLoaded | None = Field(None, description="POST /models only: which workers serve it already")


class ModelList(BaseModel):
    models: list[ModelInfo]


class Removed(BaseModel):
    removed: ModelInfo


class LogEntry(BaseModel):
    model_config = ConfigDict(extra="allow")
    time: str
    action: str


class Logs(BaseModel):
    logs: list[LogEntry]


# --- predictions --------------------------------------------------------------------------------------------------


class PredictRequest(_Strict):
    """`texts` to classify, or the legacy `data`: [input_ids, attention_mask]."""

    model: str = Field(min_length=1, max_length=64)
    texts: Texts | None = Field(None, min_length=1)
    data: list[list[list[int]]] | None = Field(None, description="legacy: [input_ids, attention_mask]")

    @model_validator(mode="after")
    def _texts_or_data(self) -> PredictRequest:
        if (self.texts is None) == (self.data is None):
            raise ValueError("give 'texts' (a list of strings) or the legacy 'data', not both")
        return self


class Prediction(BaseModel):
    label: str
    score: float
    probabilities: dict[str, float]
    prediction_id: str = Field(description="the prediction's id in the prediction log; POST /feedback takes it")


class PredictResponse(BaseModel):
    model: str
    run_id: str
    version: str | None = None
    predictions: list[Prediction]


class LegacyResponse(BaseModel):
    response: str = Field(examples=["[1 0 1 0]"])


class DataframeSplit(_Strict):
    columns: list[str] | None = None
    index: list[int] | None = None
    data: list[list[str]] = Field(min_length=1)


class InvocationsRequest(_Strict):
    """MLflow's scoring protocol: exactly one of inputs, instances, dataframe_split, dataframe_records."""

    inputs: Texts | str | dict[str, Texts] | None = None
    instances: Texts | str | dict[str, Texts] | None = None
    dataframe_split: DataframeSplit | None = None
    dataframe_records: list[dict[str, str]] | None = None
    params: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> InvocationsRequest:
        given = [
            k for k in ("inputs", "instances", "dataframe_split", "dataframe_records") if getattr(self, k) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "the body must have exactly one of: inputs, instances, dataframe_split, dataframe_records"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self


class InvocationPrediction(BaseModel):
    label: str
    score: float
    prediction_id: str


# --- feedback -----------------------------------------------------------------------------------------------------


class FeedbackItem(_Strict):
    """The true label of one answer, named by the answer's prediction_id or by the sha256 of its text."""

    prediction_id: str | None = Field(None, pattern=r"^[0-9a-f]{32}$")
    text_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    label: str = Field(min_length=1, max_length=32, description="the true label, e.g. positive")

    @model_validator(mode="after")
    def _one_reference(self) -> FeedbackItem:
        if (self.prediction_id is None) == (self.text_sha256 is None):
            raise ValueError("each item needs exactly one of prediction_id, text_sha256")
        return self


class FeedbackRequest(_Strict):
    feedback: list[FeedbackItem] = Field(min_length=1, max_length=5000)


class FeedbackAccepted(BaseModel):
    accepted: int


class InvocationsResponse(BaseModel):
    predictions: list[InvocationPrediction]


# --- Open Inference Protocol (KServe V2) ------------------------------------------------------------------------


class V2Tensor(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    shape: list[int] = Field(min_length=1, max_length=4)
    datatype: str
    data: list[Any]
    parameters: dict[str, Any] | None = None


class V2RequestedOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = None


class V2InferenceRequest(_Strict):
    id: str | None = Field(None, max_length=256)
    parameters: dict[str, Any] | None = None
    inputs: list[V2Tensor] = Field(min_length=1, max_length=1)
    outputs: list[V2RequestedOutput] | None = None


class V2OutputTensor(BaseModel):
    name: str
    shape: list[int]
    datatype: Literal["BYTES", "FP32"]
    data: list[Any]


class V2InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = Field(
        None, description="prediction_ids: each text's id in the prediction log, comma-separated, in input order"
    )
    outputs: list[V2OutputTensor]


class V2MetadataTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class V2ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[V2MetadataTensor]
    outputs: list[V2MetadataTensor]


class V2ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class V2Ready(BaseModel):
    name: str | None = None
    ready: bool
    error: str | None = None


class V2Live(BaseModel):
    live: bool
