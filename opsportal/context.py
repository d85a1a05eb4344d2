"""Per-request (or per-task) context carried in contextvars: request id and acting principal."""

from __future__ import annotations

import contextvars
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_actor: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("actor", default=None)


@dataclass(frozen=True)
class Actor:
    """Who is acting: a user, an API token, or the system (beat, commands)."""

    user_id: int | None = None
    token_id: int | None = None
    label: str = "system"
    ip: str | None = None


SYSTEM = Actor()


def new_request_id() -> str:
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    return _request_id.get()


def set_request_id(value: str | None) -> contextvars.Token:
    return _request_id.set(value)


def reset_request_id(token: contextvars.Token) -> None:
    _request_id.reset(token)


def current_actor() -> Actor:
    return _actor.get() or SYSTEM


@contextmanager
def acting_as(actor: Actor) -> Any:
    token = _actor.set(actor)
    try:
        yield actor
    finally:
        _actor.reset(token)
