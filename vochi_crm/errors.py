"""The core's exception tree.

Every error a front-end may show derives from :class:`VochiError` and carries the HTTP status the
daemon answers with and the exit code the CLI ends with, so no front-end maps errors by hand::

    VochiError
    ├── InvalidInput          422 / exit 2   bad input; ``fields`` names each offending field
    ├── NotFound              404 / exit 2   an unknown unit, event, …
    ├── Conflict              409 / exit 1   a concurrent change won the race
    └── StorageUnavailable    503 / exit 1   the database cannot be reached or refused the operation
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One problem with one input field (dotted path, e.g. ``user_mappings.151``)."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class VochiError(Exception):
    """Base of every error the core raises on purpose."""

    http_status = 500
    exit_code = 1
    title = "Error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, object]:
        return {"error": self.title, "detail": self.message}


class InvalidInput(VochiError):
    """The input names something wrong; ``fields`` lists every problem found, not just the first."""

    http_status = 422
    exit_code = 2
    title = "Invalid input"

    def __init__(
        self, fields: Sequence[FieldError] | FieldError, message: str | None = None
    ) -> None:
        self.fields: tuple[FieldError, ...] = (
            (fields,) if isinstance(fields, FieldError) else tuple(fields)
        )
        super().__init__(message or "; ".join(str(f) for f in self.fields))

    @classmethod
    def one(cls, field: str, message: str) -> InvalidInput:
        return cls(FieldError(field, message))

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> InvalidInput:
        return cls([FieldError(f, m) for f, m in pairs])

    def to_dict(self) -> dict[str, object]:
        return {
            "error": self.title,
            "detail": self.message,
            "fields": [{"field": f.field, "message": f.message} for f in self.fields],
        }


class NotFound(VochiError):
    http_status = 404
    exit_code = 2
    title = "Not found"


class Conflict(VochiError):
    http_status = 409
    exit_code = 1
    title = "Conflict"


class StorageUnavailable(VochiError):
    """PostgreSQL is unreachable, or the embedded cluster could not be started."""

    http_status = 503
    exit_code = 1
    title = "Database unavailable"
