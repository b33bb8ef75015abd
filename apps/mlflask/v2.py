"""The Open Inference Protocol (KServe V2) beside the native routes: health, model metadata, readiness, infer.

A text classifier takes one input tensor `text` (BYTES, shape [N] or [N, 1]) and returns `label` (BYTES, [N])
and `probabilities` (FP32, [N, number of labels]). Errors are `{"error": "..."}` as the protocol says.
"""

from __future__ import annotations

import json

from flask import Blueprint, jsonify, request

from apps.mlflask import schemas, validation
from apps.mlflask.deploy import check_name
from apps.mlflask.errors import ApiError
from apps.mlflask.openapi import doc
from apps.mlflask.service import context, not_ready, predict_texts, served

bp = Blueprint("v2", __name__, url_prefix="/v2")
_V2 = ("KServe V2",)


def _record(name: str) -> dict:
    record = context().store.read_state().get(check_name(name))
    if record is None:
        raise ApiError(404, f"model {name!r} is not deployed")
    return record


@bp.get("")
@doc("Server metadata", response=schemas.V2ServerMetadata, tags=_V2)
def server_metadata():
    return jsonify(name="mlflask", version="2", extensions=[])


@bp.get("/health/live")
@doc("Server liveness", response=schemas.V2Live, tags=_V2)
def live():
    return jsonify(live=True)


@bp.get("/health/ready")
@doc("Server readiness: 503 until the deployed models are loaded here", response=schemas.V2Ready, tags=_V2)
def ready():
    waiting = not_ready()
    if waiting:
        return jsonify(ready=False, error=waiting), 503, {"Retry-After": "1"}
    return jsonify(ready=True)


@bp.get("/models/<name>")
@doc("Model metadata: inputs and outputs", response=schemas.V2ModelMetadata, errors=(404, 422), tags=_V2)
def model_metadata(name: str):
    record = _record(name)
    return jsonify(
        name=name,
        versions=[str(record.get("version", ""))],
        platform=f"transformers_{record.get('backend', 'torch')}",
        inputs=[{"name": "text", "datatype": "BYTES", "shape": [-1]}],
        outputs=[
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, -1]},
        ],
    )


def _request_body() -> dict:
    """The JSON inference request, with the binary tensor data extension (Triton's and KServe's clients send
    `Inference-Header-Content-Length`: that much JSON, then each input's `binary_data_size` bytes)."""
    header = request.headers.get("Inference-Header-Content-Length")
    if header is None:
        return validation.json_body(force=True)
    raw = request.get_data()  # bounded by MLFLASK_MAX_BODY
    if not header.isdigit() or int(header) > len(raw):
        raise ApiError(400, "Inference-Header-Content-Length must be the length of the JSON part of the body")
    try:
        data = json.loads(raw[: int(header)])
    except (ValueError, RecursionError):
        raise ApiError(400, "the JSON part of the body cannot be read") from None
    if not isinstance(data, dict) or not isinstance(data.get("inputs"), list):
        raise ApiError(400, "the JSON part of the body must be an inference request with inputs")
    binary, offset = raw[int(header) :], 0
    for tensor in data["inputs"]:
        size = (tensor.get("parameters") or {}).pop("binary_data_size", None) if isinstance(tensor, dict) else None
        if size is None:
            continue
        if not isinstance(size, int) or size < 0 or offset + size > len(binary):
            raise ApiError(400, "binary_data_size does not match the binary part of the body")
        tensor["data"] = _bytes_elements(binary[offset : offset + size])
        offset += size
    return data


def _bytes_elements(chunk: bytes) -> list[str]:
    """A BYTES tensor in the binary extension: each element a 4-byte little-endian length, then UTF-8 text."""
    texts, i = [], 0
    while i < len(chunk):
        length = int.from_bytes(chunk[i : i + 4], "little")
        if i + 4 + length > len(chunk):
            raise ApiError(400, "a BYTES element runs past its binary data")
        try:
            texts.append(chunk[i + 4 : i + 4 + length].decode("utf-8"))
        except UnicodeDecodeError:
            raise ApiError(400, "BYTES elements must be UTF-8 text") from None
        i += 4 + length
    return texts


@bp.get("/models/<name>/ready")
@doc("Model readiness", response=schemas.V2Ready, errors=(404, 422), tags=_V2)
def model_ready(name: str):
    record = _record(name)
    if not context().models.holds(record["deploy_id"]):
        return jsonify(name=name, ready=False, error="this worker has not loaded it yet"), 503, {"Retry-After": "1"}
    return jsonify(name=name, ready=True)


@bp.post("/models/<name>/infer")
@doc(
    "Inference",
    request=schemas.V2InferenceRequest,
    response=schemas.V2InferenceResponse,
    errors=(400, 404, 413, 422, 503),
    tags=_V2,
)
def infer(name: str):
    check_name(name)
    body = validation.parse(schemas.V2InferenceRequest, _request_body())
    tensor = body.inputs[0]
    if tensor.datatype != "BYTES":
        raise ApiError(400, f"input {tensor.name!r} must be BYTES (texts), not {tensor.datatype}")
    count = tensor.shape[0]
    if tensor.shape not in ([count], [count, 1]) or len(tensor.data) != count or count < 1:
        raise ApiError(400, f"input {tensor.name!r}: shape {tensor.shape} does not match {len(tensor.data)} texts")
    if not all(isinstance(text, str) for text in tensor.data):
        raise ApiError(400, f"input {tensor.name!r}: every element must be a string")
    texts = validation.check_texts(tensor.data, context().settings.mlflask_max_texts)
    loaded, predictions = predict_texts(name, texts)
    served(name)
    labels = list(predictions[0]["probabilities"])
    outputs = {
        "label": {"name": "label", "shape": [count], "datatype": "BYTES", "data": [p["label"] for p in predictions]},
        "probabilities": {
            "name": "probabilities",
            "shape": [count, len(labels)],
            "datatype": "FP32",
            "data": [p["probabilities"][label] for p in predictions for label in labels],
        },
    }
    wanted = [o.name for o in body.outputs] if body.outputs else list(outputs)
    unknown = [o for o in wanted if o not in outputs]
    if unknown:
        raise ApiError(400, f"unknown output(s) {unknown}; this model has: label, probabilities")
    return jsonify(
        model_name=name,
        model_version=str(loaded.record.get("version")),
        id=body.id,
        parameters={"prediction_ids": ",".join(p["prediction_id"] for p in predictions)},  # V2: scalar values
        outputs=[outputs[o] for o in wanted],
    )
