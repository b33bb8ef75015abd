"""Parsing request bodies into the pydantic models of `schemas`: anything unexpected becomes a 4xx ApiError
with a clear, short message (never a traceback, never the raw input echoed back at length)."""

from __future__ import annotations

import csv
import io
import re

from flask import request
from pydantic import BaseModel, ValidationError

from apps.mlflask.errors import ApiError

_LIMIT = re.compile(r"[0-9]{1,4}")


def json_body(force: bool = False) -> dict:
    """The JSON object of the body; `force` reads it whatever the Content-Type (V2 clients send none)."""
    try:
        data = request.get_json(silent=True, force=force)
    except RecursionError:  # a body nested thousands deep
        raise ApiError(400, "request body is nested too deeply") from None
    if data is None:
        raise ApiError(400, "request body must be JSON (Content-Type: application/json)")
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object")
    return data


def parse(model: type[BaseModel], data: dict, status: int = 400):
    """`data` as `model`; the first problem becomes "'field': what was wrong"."""
    try:
        return model.model_validate(data)
    except RecursionError:
        raise ApiError(400, "request body is nested too deeply") from None
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        raise ApiError(status, f"'{where}': {message}" if where else message) from None


def check_texts(texts: list[str], max_texts: int) -> list[str]:
    """At most `max_texts` strings, each valid Unicode. JSON can carry a lone UTF-16 surrogate ("\\ud800") that
    pydantic takes as a str but the tokenizer refuses: it is refused here, so it never joins another request's batch."""
    if len(texts) > max_texts:
        raise ApiError(413, f"too many texts: {len(texts)} > MLFLASK_MAX_TEXTS={max_texts}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ApiError(400, f"text {i} must be a string")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(400, f"text {i} is not valid Unicode (it holds a lone surrogate)") from None
    return texts


def limit(raw: str | None, default: int = 200, top: int = 5000) -> int:
    """A `?limit=` in ASCII digits, 1 to `top`."""
    if raw is None:
        return default
    if not _LIMIT.fullmatch(raw) or not 1 <= int(raw) <= top:
        raise ApiError(400, f"'limit' must be a whole number from 1 to {top}")
    return int(raw)


def legacy_ids(data, max_texts: int, vocab_size: int, max_positions: int) -> tuple[list[list[int]], list[list[int]]]:
    """`[input_ids, attention_mask]`, two equal-shaped lists of int lists (the original sample's body)."""
    if len(data) != 2:
        raise ApiError(400, "'data' must be [input_ids, attention_mask]")
    ids, mask = data
    for name, rows in (("input_ids", ids), ("attention_mask", mask)):
        if not rows or not all(rows):
            raise ApiError(400, f"{name} must be a non-empty list of non-empty lists")
    if len(ids) > max_texts:
        raise ApiError(413, f"too many texts: {len(ids)} > MLFLASK_MAX_TEXTS={max_texts}")
    if [len(r) for r in ids] != [len(r) for r in mask] or len({len(r) for r in ids}) != 1:
        raise ApiError(400, "input_ids and attention_mask must have the same rectangular shape")
    if len(ids[0]) > max_positions:
        raise ApiError(413, f"rows have {len(ids[0])} tokens; this model takes at most {max_positions}")
    if any(not 0 <= v < vocab_size for r in ids for v in r):
        raise ApiError(400, f"input_ids must be between 0 and {vocab_size - 1}")
    if any(v not in (0, 1) for r in mask for v in r):
        raise ApiError(400, "attention_mask must hold 0 or 1 only")
    return ids, mask


def invocation_texts(body) -> list[str]:
    """Texts from a validated MLflow scoring body (exactly one format, checked by the schema)."""
    for value in (body.inputs, body.instances):
        if value is None:
            continue
        if isinstance(value, str):
            return [value]
        if isinstance(value, dict):
            if len(value) != 1:
                raise ApiError(400, "'inputs' as an object must have exactly one column of texts")
            value = next(iter(value.values()))
        return _non_empty(value)
    if body.dataframe_records is not None:
        if not all(len(record) == 1 for record in body.dataframe_records):
            raise ApiError(400, '\'dataframe_records\' must be one-column records, e.g. [{"text": "..."}]')
        return _non_empty([next(iter(record.values())) for record in body.dataframe_records])
    rows = body.dataframe_split.data
    if not all(len(row) == 1 for row in rows):
        raise ApiError(400, '\'dataframe_split\' must have one column: {"columns": ["text"], "data": [["..."]]}')
    return _non_empty([row[0] for row in rows])


def csv_texts(raw: bytes) -> list[str]:
    """A `text/csv` body: a header row, then one text per row (MLflow's CSV input)."""
    try:
        rows = list(csv.reader(io.StringIO(raw.decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ApiError(400, f"the CSV body cannot be read: {type(exc).__name__}") from None
    if len(rows) < 2 or any(len(row) != 1 for row in rows):
        raise ApiError(400, "the CSV body must be a header row, then one text per row, in one column")
    return [row[0] for row in rows[1:]]


def _non_empty(texts: list[str]) -> list[str]:
    if not texts:
        raise ApiError(400, "there must be at least one text")
    return texts
