"""Who may use the admin UI and the config API: signed tokens and server-side sessions.

* **Tokens** are HS256 JWTs signed with ``VOCHI_ADMIN__JWT_SECRET``, the secret shared with the
  platform (reference B5: its unit admin opens ``/retailcrm-admin/?enterprise_number=N&token=…``)
  and used by ``vochi-crm admin-link``. Claims: ``exp`` and ``iat`` (required), the unit as
  ``enterprise_number`` (or ``sub``, as the platform's own admin tokens carry it), and
  ``"super": true`` for the all-units scope of ops. ``alg`` is pinned to HS256.
* **Sessions** are created when a token is exchanged: a random id (256 bits) goes into the
  admin's HttpOnly cookie, only its SHA-256 into ``vochi_admin_sessions``, with the scope, a
  per-session CSRF token and an expiry.
* **ExchangeLimiter** bounds sign-ins per client address (in memory, per process).

Front-ends render; the decisions are here.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import jwt
from jwt.types import Options

from vochi_crm.db import queries
from vochi_crm.db.database import Database
from vochi_crm.errors import VochiError
from vochi_crm.units import UNIT_NUMBER

ALGORITHM = "HS256"
LEEWAY_SECONDS = 30
MIN_SECRET = 32
Reason = Literal[
    "disabled", "missing", "invalid", "expired", "unit_mismatch", "scope", "csrf", "rate_limited"
]


class AccessDenied(VochiError):
    """No valid credentials, or credentials for another unit: HTTP 403."""

    http_status = 403
    exit_code = 1
    title = "Forbidden"

    def __init__(self, message: str, reason: Reason = "scope") -> None:
        super().__init__(message)
        self.reason = reason

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "reason": self.reason}


@dataclass(frozen=True, slots=True)
class AdminScope:
    """What a token or a session may touch: one unit, or every unit (``super``)."""

    unit: str | None
    super: bool = False
    subject: str | None = None

    def allows(self, unit: str) -> bool:
        return self.super or (self.unit is not None and hmac.compare_digest(self.unit, unit))

    def require(self, unit: str) -> None:
        if not self.allows(unit):
            raise AccessDenied(f"this access is for unit {self.unit}, not {unit}", "scope")


# -- tokens --------------------------------------------------------------------------------------


def issue_token(
    secret: str,
    *,
    unit: str | None = None,
    super_: bool = False,
    ttl_seconds: int,
    subject: str | None = None,
    now: float | None = None,
) -> str:
    """A signed token for ``unit`` (or for every unit with ``super_``), valid ``ttl_seconds``."""
    if unit is None and not super_:
        raise ValueError("a token is for a unit or super")
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {"iat": issued, "exp": issued + ttl_seconds, "source": "vochi-crm"}
    if unit is not None:
        claims["enterprise_number"] = unit
    if super_:
        claims["super"] = True
    if subject:
        claims["sub"] = subject
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(secret: str | None, token: str, *, now: float | None = None) -> AdminScope:
    """The scope a token grants; :class:`AccessDenied` (never echoing the token) otherwise."""
    if not secret:
        raise AccessDenied(
            "admin access is not configured (VOCHI_ADMIN__JWT_SECRET is unset)", "disabled"
        )
    if not token or len(token) > 4096:
        raise AccessDenied("no valid token", "missing" if not token else "invalid")
    options: Options = {"require": ["exp", "iat"], "verify_aud": False}
    try:
        if now is None:
            claims = jwt.decode(
                token, secret, algorithms=[ALGORITHM], options=options, leeway=LEEWAY_SECONDS
            )
        else:  # tests: judge expiry at a given time
            claims = jwt.decode(
                token, secret, algorithms=[ALGORITHM], options={**options, "verify_exp": False}
            )
            if float(claims["exp"]) + LEEWAY_SECONDS < now:
                raise jwt.ExpiredSignatureError("expired")
    except jwt.ExpiredSignatureError:
        raise AccessDenied("the token has expired: open the link again", "expired") from None
    except (jwt.InvalidTokenError, ValueError, TypeError, KeyError):
        raise AccessDenied("the token is not valid", "invalid") from None
    return _scope(claims)


def _scope(claims: dict[str, Any]) -> AdminScope:
    super_ = claims.get("super") is True or claims.get("scope") == "super"
    unit = claims.get("enterprise_number", claims.get("sub") if not super_ else None)
    if isinstance(unit, int) and not isinstance(unit, bool):
        unit = str(unit)
    if unit is not None and (not isinstance(unit, str) or not UNIT_NUMBER.match(unit)):
        raise AccessDenied("the token names no valid unit", "invalid")
    if unit is None and not super_:
        raise AccessDenied("the token names no unit", "invalid")
    subject = claims.get("sub") if isinstance(claims.get("sub"), str) else None
    return AdminScope(unit=unit, super=super_, subject=subject)


# -- sessions ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AdminSession:
    scope: AdminScope
    csrf_token: str
    created_at: datetime
    expires_at: datetime

    def csrf_ok(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(self.csrf_token.encode(), (given or "").encode())


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class AdminSessions:
    """Server-side sessions: the raw id is returned once (for the cookie) and never stored."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, scope: AdminScope, ttl_seconds: float) -> tuple[str, AdminSession]:
        session_id = secrets.token_urlsafe(32)
        async with self._db.transaction() as conn:
            await conn.execute(queries.ADMIN_SESSIONS_PURGE)
            cur = await conn.execute(
                queries.ADMIN_SESSION_INSERT,
                {
                    "id_hash": _hash(session_id),
                    "unit": scope.unit,
                    "super": scope.super,
                    "subject": scope.subject,
                    "csrf": secrets.token_urlsafe(32),
                    "ttl": float(ttl_seconds),
                },
            )
            row = await cur.fetchone()
        assert row is not None
        return session_id, _session(row)

    async def get(self, session_id: str | None) -> AdminSession | None:
        """The live session with this id; ``None`` when unknown, expired or ended."""
        if not session_id or len(session_id) > 256:
            return None
        async with self._db.connection() as conn:
            cur = await conn.execute(queries.ADMIN_SESSION_GET, {"id_hash": _hash(session_id)})
            row = await cur.fetchone()
        return None if row is None else _session(row)

    async def end(self, session_id: str | None) -> None:
        if not session_id:
            return
        async with self._db.transaction() as conn:
            await conn.execute(queries.ADMIN_SESSION_DELETE, {"id_hash": _hash(session_id)})


def _session(row: dict[str, Any]) -> AdminSession:
    return AdminSession(
        scope=AdminScope(row["enterprise_number"], bool(row["super"]), row["subject"]),
        csrf_token=row["csrf_token"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
    )


# -- rate limiting of the token exchange ---------------------------------------------------------


class ExchangeLimiter:
    """At most ``per_minute`` attempts per client address in any 60 s window (in memory)."""

    WINDOW = 60.0

    def __init__(self, per_minute: int, *, max_clients: int = 10_000) -> None:
        self._limit = per_minute
        self._max_clients = max_clients
        self._seen: dict[str, deque[float]] = {}

    def check(self, client: str, now: float | None = None) -> float | None:
        """Count an attempt: ``None`` when allowed, else the seconds until the next is."""
        now = time.monotonic() if now is None else now
        hits = self._seen.get(client)
        if hits is None:
            if len(self._seen) >= self._max_clients:
                self._forget_idle(now)
            hits = self._seen.setdefault(client, deque())
        while hits and hits[0] <= now - self.WINDOW:
            hits.popleft()
        if len(hits) >= self._limit:
            return max(hits[0] + self.WINDOW - now, 1.0)
        hits.append(now)
        return None

    def _forget_idle(self, now: float) -> None:
        for client in [c for c, h in self._seen.items() if not h or h[-1] <= now - self.WINDOW]:
            del self._seen[client]
        if len(self._seen) >= self._max_clients:  # all busy: drop the oldest half
            for client in list(self._seen)[: self._max_clients // 2]:
                del self._seen[client]
