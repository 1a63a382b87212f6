"""One error shape for every failure: RFC 9457 problem details."""

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, Field

PROBLEM_MEDIA_TYPE = "application/problem+json"


class FieldError(BaseModel):
    """One invalid input: where it is and what is wrong with it."""

    loc: list[str | int] = Field(description="Path to the invalid value")
    message: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem details object."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None


def problem(
    status: int,
    detail: str | None = None,
    *,
    instance: str | None = None,
    errors: list[FieldError] | None = None,
) -> Problem:
    """Build the problem for an HTTP status, titled with its standard phrase."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    return Problem(title=title, status=status, detail=detail, instance=instance, errors=errors)


def field_errors(errors: Sequence[Any]) -> list[FieldError]:
    """Convert pydantic error dicts to ``FieldError``s (no echo of the input)."""
    return [
        FieldError(
            loc=[part if isinstance(part, int) else str(part) for part in error["loc"]],
            message=str(error["msg"]),
            type=str(error["type"]),
        )
        for error in errors
    ]
