"""The wire format of ``guard serve``, as pydantic models: what ``/openapi.json`` documents.

The request body is read and checked by hand (see :mod:`guard.defenses.serve.app`: the
server owns the status of every malformed request, and sees the body's size before it is
parsed), so its schema is written here as JSON Schema, shaped by the model's input rows when
they are known. The answers and errors are pydantic models that FastAPI puts in the schema's
components.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

OUTPUTS = ("labels", "probabilities")


class LabelsAnswer(BaseModel):
    """One predicted class index (0 .. classes-1) per input row."""

    model_config = ConfigDict(extra="forbid")
    labels: list[int] = Field(description="the predicted class index of each input row, in order")


class ProbabilitiesAnswer(BaseModel):
    """One probability vector per input row, after the caller's output rules."""

    model_config = ConfigDict(extra="forbid")
    probabilities: list[list[float]] = Field(
        description="class probabilities of each input row (hardened per the caller's role: "
        "reverse sigmoid, top-k, rounding)"
    )


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(description="a stable machine-readable code, e.g. unauthenticated, "
                      "budget_exceeded, input_rejected, body_too_large")
    message: str = Field(description="one line saying what was wrong")
    remaining: int | None = Field(default=None, description="queries left in the caller's total budget")


class ErrorBody(BaseModel):
    """Every error answer: ``{"error": {"code": ..., "message": ..., "remaining": N?}}``."""

    model_config = ConfigDict(extra="forbid")
    error: ErrorDetail


class Health(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["ok"]
    model: dict[str, Any] = Field(description="what the served model is (class, format, framework)")
    classes: int = Field(description="the number of classes a label can take")


def request_schema(shape: tuple[int, ...] | None, value_range: tuple[float, float] | None) -> dict[str, Any]:
    """JSON Schema of the predict body. ``shape`` is one input row's shape (``(64,)``,
    ``(1, 8, 8)``): rows are documented as arrays nested that deep, of exactly those lengths;
    ``value_range`` bounds the numbers. Without them an input row is any JSON value (the
    model's validator answers 422 for what it cannot take)."""
    number: dict[str, Any] = {"type": "number"}
    if value_range is not None:
        number |= {"minimum": value_range[0], "maximum": value_range[1]}
    row: dict[str, Any] = number if shape is not None else {}
    for size in reversed(shape or ()):
        row = {"type": "array", "items": row, "minItems": size, "maxItems": size}
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["inputs"],
        "properties": {
            "inputs": {
                "type": "array",
                "minItems": 1,
                "items": row,
                "description": "the batch: one input row per entry"
                + (f", each of shape {list(shape)}" if shape is not None else ""),
            },
            "output": {
                "type": "string",
                "enum": list(OUTPUTS),
                "default": "labels",
                "description": "labels (needs the predict permission) or probabilities (predict_proba)",
            },
        },
    }
