"""/openapi.json built from the routes and their pydantic models, and Swagger UI at /docs (Swagger UI 5, from the
swagger-ui-py package: nothing from a CDN). A route documents itself with `@doc(...)`, so the spec cannot drift
from the code."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from flask import Blueprint, Flask, Response, current_app, jsonify, send_from_directory
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from apps.mlflask import schemas

bp = Blueprint("docs", __name__)
_JSON = "application/json"


@dataclass(frozen=True)
class Doc:
    summary: str
    request: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    query: tuple[tuple[str, str, str], ...] = ()  # (name, JSON type, description)
    auth: bool = False
    csv: bool = False
    error_model: type[BaseModel] = schemas.Error
    tags: tuple[str, ...] = field(default_factory=tuple)


def doc(summary: str, **kwargs):
    """Attach the OpenAPI description of a view: its models, error statuses and query parameters."""

    def mark(view):
        view.__openapi__ = Doc(summary, **kwargs)
        return view

    return mark


def _ref(model: type[BaseModel]) -> dict:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def build_spec(app: Flask) -> dict:
    models: set[type[BaseModel]] = {schemas.Error}
    paths: dict[str, dict] = {}
    for rule in app.url_map.iter_rules():
        described: Doc | None = getattr(app.view_functions.get(rule.endpoint), "__openapi__", None)
        if described is None:
            continue
        path = re.sub(r"<(?:[a-z]+:)?([A-Za-z_]+)>", r"{\1}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            operation: dict = {"summary": described.summary, "operationId": f"{rule.endpoint}_{method.lower()}"}
            if described.tags:
                operation["tags"] = list(described.tags)
            parameters = [
                {
                    "name": name,
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": schemas.NAME_PATTERN},
                }
                for name in rule.arguments
            ] + [
                {"name": name, "in": "query", "required": False, "schema": {"type": kind}, "description": text}
                for name, kind, text in described.query
            ]
            if parameters:
                operation["parameters"] = parameters
            if described.request is not None:
                models.add(described.request)
                content = {_JSON: {"schema": _ref(described.request)}}
                if described.csv:
                    content["text/csv"] = {
                        "schema": {"type": "string", "description": "a header row, then one text per row"}
                    }
                operation["requestBody"] = {"required": True, "content": content}
            responses: dict = {}
            if described.response is not None:
                models.add(described.response)
                responses["200"] = {"description": "OK", "content": {_JSON: {"schema": _ref(described.response)}}}
            else:
                responses["200"] = {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}
            models.add(described.error_model)
            for status in described.errors:
                responses[str(status)] = {
                    "description": _REASONS.get(status, "error"),
                    "content": {_JSON: {"schema": _ref(described.error_model)}},
                }
            operation["responses"] = responses
            if described.auth:
                operation["security"] = [{"bearer": []}, {}]
            paths.setdefault(path, {})[method.lower()] = operation
    _, definitions = models_json_schema(
        [(m, "validation") for m in sorted(models, key=lambda m: m.__name__)],
        ref_template="#/components/schemas/{model}",
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "MLFlask",
            "version": "2",
            "description": "Serves movie-review sentiment models from the MLflow Model Registry.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


_REASONS = {
    400: "malformed or wrongly typed input",
    401: "missing or invalid bearer token",
    403: "refused: this route is off here (see the message)",
    404: "unknown model, run or version",
    405: "method not allowed",
    409: "a deploy or removal of this name is in progress",
    413: "body or batch too large",
    422: "invalid name or reference, or a model that cannot be served",
    429: "too many requests from this sender: retry later (see Retry-After)",
    502: "the model store answered badly",
    503: "overloaded or MLflow unavailable: retry later (see Retry-After)",
}

_SWAGGER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>MLFlask API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", validatorUrl: null});</script>
</body></html>
"""


@bp.get("/openapi.json")
def openapi():
    spec = current_app.extensions.get("mlflask-openapi")
    if spec is None:
        spec = current_app.extensions["mlflask-openapi"] = build_spec(current_app)
    return jsonify(spec)


@bp.get("/docs")
def swagger():
    return Response(_SWAGGER_PAGE, mimetype="text/html")


@bp.get("/docs/<asset>")
def swagger_asset(asset: str):
    import swagger_ui  # swagger-ui-py: Swagger UI 5, which renders OpenAPI 3.1 (4.x refused our spec)

    if asset not in ("swagger-ui.css", "swagger-ui-bundle.js"):
        return jsonify(error="no such endpoint"), 404
    return send_from_directory(Path(swagger_ui.__file__).parent / "static", asset)
