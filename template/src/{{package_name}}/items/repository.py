"""Storage of items behind a small interface.

``InMemoryItemRepository`` keeps items in the memory of one worker process: each
Gunicorn worker has its own copy and everything is lost on restart. Replace it with
a class backed by your database that implements ``ItemRepository``.
"""

import threading
from typing import Protocol

from .models import Item, ItemCreate


class ItemRepository(Protocol):
    def add(self, data: ItemCreate) -> Item: ...

    def get(self, item_id: int) -> Item | None: ...

    def list(self, *, limit: int, offset: int) -> tuple[list[Item], int]: ...

    def ping(self) -> bool: ...


class InMemoryItemRepository:
    """A thread-safe, process-local ``ItemRepository``."""

    def __init__(self) -> None:
        self._items: dict[int, Item] = {}
        self._next_id = 1
        self._lock = threading.Lock()

    def add(self, data: ItemCreate) -> Item:
        with self._lock:
            item = Item(id=self._next_id, **data.model_dump())
            self._items[item.id] = item
            self._next_id += 1
        return item

    def get(self, item_id: int) -> Item | None:
        return self._items.get(item_id)

    def list(self, *, limit: int, offset: int) -> tuple[list[Item], int]:
        with self._lock:
            items = list(self._items.values())
        return items[offset : offset + limit], len(items)

    def ping(self) -> bool:
        return True
