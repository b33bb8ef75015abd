"""Parsing request bodies: anything unexpected becomes a 4xx ApiError with a clear message."""

from __future__ import annotations

from flask import request

from apps.mlflask.errors import ApiError


def json_body() -> dict:
    data = request.get_json(silent=True)
    if data is None:
        raise ApiError(400, "request body must be JSON (Content-Type: application/json)")
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object")
    return data


def texts(value, max_texts: int, field: str = "texts") -> list[str]:
    if not isinstance(value, list):
        raise ApiError(400, f"'{field}' must be a list of strings")
    if not value:
        raise ApiError(400, f"'{field}' must not be empty")
    if len(value) > max_texts:
        raise ApiError(413, f"too many texts: {len(value)} > MLFLASK_MAX_TEXTS={max_texts}")
    if not all(isinstance(t, str) for t in value):
        raise ApiError(400, f"every item of '{field}' must be a string")
    return value


def model_name(value) -> str:
    if not isinstance(value, str) or not value:
        raise ApiError(400, "'model' must be a non-empty string")
    return value


def legacy_ids(data, max_texts: int, vocab_size: int) -> tuple[list[list[int]], list[list[int]]]:
    """`[input_ids, attention_mask]`, two equal-shaped lists of int lists (the original sample's body)."""
    if not (isinstance(data, list) and len(data) == 2):
        raise ApiError(400, "'data' must be [input_ids, attention_mask]")
    ids, mask = data
    for name, rows in (("input_ids", ids), ("attention_mask", mask)):
        if not isinstance(rows, list) or not rows or not all(isinstance(r, list) and r for r in rows):
            raise ApiError(400, f"{name} must be a non-empty list of non-empty lists")
        if not all(isinstance(v, int) and not isinstance(v, bool) for r in rows for v in r):
            raise ApiError(400, f"{name} must hold integers only")
    if len(ids) > max_texts:
        raise ApiError(413, f"too many texts: {len(ids)} > MLFLASK_MAX_TEXTS={max_texts}")
    if [len(r) for r in ids] != [len(r) for r in mask] or len({len(r) for r in ids}) != 1:
        raise ApiError(400, "input_ids and attention_mask must have the same rectangular shape")
    if any(not 0 <= v < vocab_size for r in ids for v in r):
        raise ApiError(400, f"input_ids must be between 0 and {vocab_size - 1}")
    if any(v not in (0, 1) for r in mask for v in r):
        raise ApiError(400, "attention_mask must hold 0 or 1 only")
    return ids, mask


def invocation_texts(data: dict, max_texts: int) -> list[str]:
    """Texts from MLflow scoring-server bodies: inputs, dataframe_records or dataframe_split."""
    if "inputs" in data:
        value = data["inputs"]
        if isinstance(value, dict) and len(value) == 1:
            value = next(iter(value.values()))
        elif isinstance(value, str):
            value = [value]
        return texts(value, max_texts, "inputs")
    if "dataframe_records" in data:
        records = data["dataframe_records"]
        if not isinstance(records, list) or not all(isinstance(r, dict) and len(r) == 1 for r in records):
            raise ApiError(400, '\'dataframe_records\' must be a list of one-column records, e.g. [{"text": "..."}]')
        return texts([next(iter(r.values())) for r in records], max_texts, "dataframe_records")
    if "dataframe_split" in data:
        split = data["dataframe_split"]
        rows = split.get("data") if isinstance(split, dict) else None
        if not isinstance(rows, list) or not all(isinstance(r, list) and len(r) == 1 for r in rows):
            raise ApiError(400, '\'dataframe_split\' must be {"columns": ["text"], "data": [["..."], ...]}')
        return texts([r[0] for r in rows], max_texts, "dataframe_split")
    raise ApiError(400, "body must have one of: inputs, dataframe_records, dataframe_split")
