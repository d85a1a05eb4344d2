"""Tiles of the admin overview. Each domain app registers one tile function in its AppConfig."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Tile:
    title: str
    status: str = "ok"  # ok | warn | bad | idle
    figures: list[tuple[str, str]] = field(default_factory=list)
    link: str = ""
    note: str = ""


_TILES: list[tuple[int, Callable[[object], Tile]]] = []


def register_tile(order: int) -> Callable:
    def decorator(func: Callable[[object], Tile]) -> Callable[[object], Tile]:
        _TILES.append((order, func))
        _TILES.sort(key=lambda item: item[0])
        return func

    return decorator


def tiles_for(request) -> list[Tile]:
    return [func(request) for _, func in _TILES]
