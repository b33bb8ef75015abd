"""The OpenAPI 3 description served at /openapi.json."""

_ERROR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_JSON = "application/json"


def _body(ref: str) -> dict:
    return {"required": True, "content": {_JSON: {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def _ok(ref: str) -> dict:
    return {"description": "ok", "content": {_JSON: {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


SPEC = {
    "openapi": "3.0.3",
    "info": {
        "title": "MLFlask",
        "version": "1.0.0",
        "description": "Deploys sentiment models from MLflow and serves their predictions.",
    },
    "paths": {
        "/health": {"get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}},
        "/ready": {
            "get": {
                "summary": "Readiness, with the number of deployed models",
                "responses": {"200": {"description": "ready"}},
            }
        },
        "/models": {
            "get": {"summary": "Deployed models, newest first", "responses": {"200": _ok("ModelList")}},
            "post": {
                "summary": "Serve a registry reference (model_uri: models:/<name>@<alias> or models:/<name>/<version>),"
                " or promote a run (run_id) or the best FINISHED run by a metric to models:/<name>@MODEL_ALIAS and"
                " serve that alias",
                "security": [{"bearer": []}],
                "requestBody": _body("DeployRequest"),
                "responses": {"200": _ok("Model"), **{c: _ERROR for c in ("400", "401", "404", "409", "422", "503")}},
            },
        },
        "/models/{name}": {
            "get": {
                "summary": "One deployed model: registry reference, version, run, follow_error and model card",
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": _ok("Model"), **{c: _ERROR for c in ("404", "422")}},
            },
            "delete": {
                "summary": "Remove a deployed model",
                "security": [{"bearer": []}],
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "removed"}, **{c: _ERROR for c in ("401", "404", "409", "422")}},
            },
        },
        "/predict": {
            "post": {
                "summary": "Predict sentiment for texts (or the legacy [input_ids, attention_mask] body)",
                "requestBody": _body("PredictRequest"),
                "responses": {"200": _ok("PredictResponse"), **{c: _ERROR for c in ("400", "404", "413")}},
            }
        },
        "/invocations": {
            "post": {
                "summary": "MLflow scoring-server compatible: inputs, dataframe_records or dataframe_split",
                "parameters": [{"name": "model", "in": "query", "required": False, "schema": {"type": "string"}}],
                "requestBody": {"required": True, "content": {_JSON: {"schema": {"type": "object"}}}},
                "responses": {"200": {"description": "predictions"}, **{c: _ERROR for c in ("400", "404", "413")}},
            }
        },
        "/logs": {
            "get": {
                "summary": "Action history, newest first",
                "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer"}}],
                "responses": {"200": {"description": "log entries"}},
            }
        },
        "/metrics": {
            "get": {"summary": "Prometheus metrics of this worker", "responses": {"200": {"description": "text/plain"}}}
        },
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
            "DeployRequest": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"},
                    "model_uri": {
                        "type": "string",
                        "pattern": "^models:/[A-Za-z0-9_.-]{1,64}(/[0-9]+|@[A-Za-z0-9_-]+)$",
                    },
                    "run_id": {"type": "string"},
                    "metric": {"type": "string"},
                },
            },
            "Model": {
                "type": "object",
                "properties": {
                    k: {"type": "string"}
                    for k in ("name", "model_uri", "registered_model", "version", "run_id", "run_name", "deployed_at")
                }
                | {
                    "alias": {"type": "string", "nullable": True},
                    "experiment_id": {"type": "string"},
                    "metrics": {"type": "object"},
                    "params": {"type": "object"},
                    "tags": {"type": "object"},
                    "quantized": {"type": "boolean"},
                    "follow_error": {"type": "string", "nullable": True},
                    "card": {"type": "string", "description": "Markdown model card (GET /models/{name} only)"},
                },
            },
            "ModelList": {
                "type": "object",
                "properties": {"models": {"type": "array", "items": {"$ref": "#/components/schemas/Model"}}},
            },
            "PredictRequest": {
                "type": "object",
                "required": ["model"],
                "properties": {
                    "model": {"type": "string"},
                    "texts": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    "data": {"type": "array", "description": "legacy: [input_ids, attention_mask]"},
                },
            },
            "PredictResponse": {
                "type": "object",
                "properties": {
                    "model": {"type": "string"},
                    "run_id": {"type": "string"},
                    "predictions": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "label": {"type": "string", "enum": ["negative", "positive"]},
                                "score": {"type": "number"},
                                "probabilities": {"type": "object"},
                            },
                        },
                    },
                },
            },
        },
    },
}
