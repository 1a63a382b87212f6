"""Request and response models of the items API."""

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def _reject_bool_and_str(value: object) -> object:
    """JSON ``true`` and ``"3"`` are not integers; ``3`` and ``3.0`` are."""
    if isinstance(value, bool | str):
        raise ValueError("Input should be an integer")
    return value


#: An integer in a JSON body, as JSON Schema defines it.
JsonInt = Annotated[int, BeforeValidator(_reject_bool_and_str)]


class ItemCreate(BaseModel):
    """The body of ``POST /api/v1/items``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=100, examples=["widget"])
    description: str | None = Field(default=None, max_length=1_000)
    quantity: JsonInt = Field(default=0, ge=0, le=1_000_000)


class Item(ItemCreate):
    """A stored item."""

    id: int = Field(ge=1)


class ListParams(BaseModel):
    """Paging of ``GET /api/v1/items``."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=20, ge=1, le=100)
    offset: int = Field(default=0, ge=0, le=1_000_000)


class ItemPage(BaseModel):
    """One page of items."""

    items: list[Item]
    total: int
    limit: int
    offset: int
