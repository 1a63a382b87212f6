"""Request and response models of the items API."""

from pydantic import BaseModel, ConfigDict, Field


class ItemCreate(BaseModel):
    """The body of ``POST /api/v1/items``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=100, examples=["widget"])
    description: str | None = Field(default=None, max_length=1_000)
    quantity: int = Field(default=0, ge=0, le=1_000_000)


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
