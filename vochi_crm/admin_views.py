"""Read models and checks of the admin web UI, built on the journal, replay and config use-cases.

* :func:`search_events` / :func:`search_requests` — one unit's events and RetailCRM calls with the
  admin's filters (phone, call id, status, day); records are the journal's, masked the same way;
* :func:`replay_for_unit` — replay (the one replay use-case) of events that must belong to the unit;
* :func:`unit_extensions` — the unit's extensions: the platform's ``user_internal_phones`` where
  that table exists, the mapped ones and the ones seen in recent events;
* :func:`fetch_crm_users` — the account's users, fetched live (every page, inactive ones too);
* :func:`plan_mapping` — a mapping form checked against those users: duplicates, bad extensions,
  unknown users, as :class:`MappingProblem` codes the front-end words in the admin's language.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from vochi_crm.db import queries
from vochi_crm.db.database import Database
from vochi_crm.errors import InvalidInput, NotFound
from vochi_crm.journal import EVENT_STATUSES, EventRecord, JournalRecord
from vochi_crm.replay import ReplayRequest, ReplayResult, replay_events
from vochi_crm.retailcrm import RetailCrmClient
from vochi_crm.retailcrm_config import EXTENSION
from vochi_crm.units import Unit

REQUEST_STATUSES = ("success", "error")
MAX_USER_PAGES = 20
_PHONE = re.compile(r"^[0-9+]{3,20}$")
_CALL = re.compile(r"^[0-9A-Za-z._:-]{1,80}$")
_SPLIT = re.compile(r"[\s,;]+")


@dataclass(frozen=True, slots=True)
class JournalQuery:
    """The journal page's filters; :meth:`validated` names every bad one."""

    phone: str | None = None
    call: str | None = None
    status: str | None = None
    day: date | None = None
    limit: int = 100

    @classmethod
    def validated(
        cls, *, phone: str = "", call: str = "", status: str = "", day: str = "", limit: int = 100
    ) -> JournalQuery:
        errors: list[tuple[str, str]] = []
        phone = re.sub(r"[\s()-]", "", phone)
        if phone and not _PHONE.match(phone):
            errors.append(("phone", "digits only, e.g. 375291234567"))
        if call and not _CALL.match(call.strip()):
            errors.append(("call", "not a call id (UniqueId), e.g. 1757766449.12"))
        if status and status not in (*EVENT_STATUSES, *REQUEST_STATUSES):
            errors.append(("status", f"one of {', '.join((*EVENT_STATUSES, 'error'))}"))
        parsed: date | None = None
        if day:
            try:
                parsed = date.fromisoformat(day)
            except ValueError:
                errors.append(("day", "a date as YYYY-MM-DD"))
        if errors:
            raise InvalidInput.from_pairs(errors)
        return cls(phone.lstrip("+") or None, call.strip() or None, status or None, parsed, limit)

    def window(self, zone: ZoneInfo) -> tuple[datetime | None, datetime | None]:
        if self.day is None:
            return None, None
        start = datetime.combine(self.day, time(0), zone)
        return start, start + timedelta(days=1)


@dataclass(frozen=True, slots=True)
class EventLine:
    record: EventRecord
    phone: str | None
    extensions: tuple[str, ...]


async def search_events(
    db: Database, unit: str, query: JournalQuery, zone: ZoneInfo
) -> list[EventLine]:
    since, until = query.window(zone)
    statuses = (
        None
        if query.status is None
        else ["failed", "expired"]
        if query.status == "error"
        else ["delivered"]
        if query.status == "success"
        else [query.status]
    )
    params = {
        "unit": unit,
        "statuses": statuses,
        "call": query.call,
        "phone": query.phone,
        "since": since,
        "until": until,
        "limit": query.limit,
    }
    async with db.connection() as conn:
        rows = await (await conn.execute(queries.ADMIN_EVENTS, params)).fetchall()
    return [
        EventLine(
            EventRecord.from_row(row),
            row["phone"],
            tuple(str(e) for e in row["extensions"] or () if isinstance(e, str | int)),
        )
        for row in rows
    ]


async def search_requests(
    db: Database, unit: str, query: JournalQuery, zone: ZoneInfo
) -> list[JournalRecord]:
    since, until = query.window(zone)
    status = query.status if query.status in REQUEST_STATUSES else None
    if query.status in ("failed", "expired"):
        status = "error"
    elif query.status == "delivered":
        status = "success"
    elif query.status is not None and status is None:
        return []  # pending/processing/skipped: no RetailCRM call carries those
    params = {
        "unit": unit,
        "status": status,
        "call": query.call,
        "phone": query.phone,
        "since": since,
        "until": until,
        "limit": query.limit,
    }
    async with db.connection() as conn:
        rows = await (await conn.execute(queries.ADMIN_REQUESTS, params)).fetchall()
    return [JournalRecord.from_row(row) for row in rows]


async def replay_for_unit(db: Database, unit: str, ids: Sequence[int] = ()) -> ReplayResult:
    """Requeue the given failed/expired events of ``unit`` (all of them when ``ids`` is empty).

    An id of another unit's event is answered like an unknown one (no disclosure)."""
    if not ids:
        return await replay_events(db, ReplayRequest(unit=unit))
    async with db.connection() as conn:
        cur = await conn.execute(queries.ADMIN_EVENT_UNITS, {"ids": list(ids)})
        owners = {row["id"]: row["enterprise_number"] for row in await cur.fetchall()}
    foreign = [i for i in ids if owners.get(i) != unit]
    if foreign:
        raise NotFound(f"unknown event id {foreign[0]}")
    return await replay_events(db, ReplayRequest(ids=tuple(ids)))


async def unit_extensions(db: Database, unit: Unit) -> list[str]:
    found: set[str] = set(unit.retailcrm.user_mappings)
    async with db.connection() as conn:
        present = await (await conn.execute(queries.ADMIN_HAS_PLATFORM_PHONES)).fetchone()
        statements = [queries.ADMIN_SEEN_EXTENSIONS]
        if present is not None and present["present"]:
            statements.append(queries.ADMIN_PLATFORM_PHONES)
        for statement in statements:
            cur = await conn.execute(statement, {"unit": unit.number})
            found.update(str(r["extension"]).strip() for r in await cur.fetchall())
    return sorted((e for e in found if EXTENSION.match(e)), key=lambda e: (len(e), e))


# -- RetailCRM users and the mapping form --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CrmUser:
    id: int
    name: str
    email: str | None
    active: bool
    status: str | None


async def fetch_crm_users(unit: Unit, *, request_timeout: float) -> list[CrmUser]:
    """Every user of the unit's account (raises ``RetailCrmError``, or NotConfigured-like
    ``InvalidInput`` when the unit has no address and key)."""
    config = unit.retailcrm
    if config.api_url is None or config.api_key is None:
        raise InvalidInput.one("api_key", "the unit has no RetailCRM address and key yet")
    users: dict[int, CrmUser] = {}
    async with RetailCrmClient(config.api_url, config.api_key, timeout=request_timeout) as crm:
        for page in range(1, MAX_USER_PAGES + 1):
            data = (await crm.users(page=page, limit=100)).data
            for raw in data.get("users") or []:
                user = _user(raw)
                if user is not None:
                    users[user.id] = user
            pages = (data.get("pagination") or {}).get("totalPageCount")
            if not isinstance(pages, int) or page >= pages:
                break
    return sorted(users.values(), key=lambda u: (not u.active, u.name.lower(), u.id))


def _user(raw: object) -> CrmUser | None:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("id"), int):
        return None
    parts = [raw.get(k) for k in ("lastName", "firstName", "patronymic")]
    name = " ".join(p for p in parts if isinstance(p, str) and p.strip()) or f"#{raw['id']}"
    return CrmUser(
        id=raw["id"],
        name=name,
        email=raw.get("email") if isinstance(raw.get("email"), str) else None,
        active=raw.get("active") is not False,
        status=raw.get("status") if isinstance(raw.get("status"), str) else None,
    )


@dataclass(frozen=True, slots=True)
class MappingProblem:
    """``code``: ``bad_extension`` | ``duplicate`` | ``unknown_user``; ``field``: the form row."""

    code: str
    field: str
    extension: str | None = None
    users: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class MappingPlan:
    mapping: dict[str, int] = field(default_factory=dict)
    problems: list[MappingProblem] = field(default_factory=list)


def split_extensions(text: str) -> list[str]:
    return [part for part in _SPLIT.split(text.strip()) if part]


def plan_mapping(rows: Mapping[int, str], known_users: Iterable[int]) -> MappingPlan:
    """``{user id: "151, 155"}`` → extension → user id, or every problem found (nothing applies
    when there is one: the save is all or nothing)."""
    known = set(known_users)
    owners: dict[str, list[int]] = {}
    problems: list[MappingProblem] = []
    for user_id, text in sorted(rows.items()):
        extensions = split_extensions(text)
        if extensions and user_id not in known:
            problems.append(MappingProblem("unknown_user", f"user_{user_id}", users=(user_id,)))
            continue
        for ext in extensions:
            if not EXTENSION.match(ext):
                problems.append(MappingProblem("bad_extension", f"user_{user_id}", ext))
            elif user_id not in owners.setdefault(ext, []):
                owners[ext].append(user_id)
    for ext, users in sorted(owners.items()):
        if len(users) > 1:
            for user_id in users:
                problems.append(MappingProblem("duplicate", f"user_{user_id}", ext, tuple(users)))
    if problems:
        return MappingPlan(problems=problems)
    return MappingPlan(mapping={ext: users[0] for ext, users in sorted(owners.items())})


def mapping_by_user(mapping: Mapping[str, int]) -> dict[int, list[str]]:
    result: dict[int, list[str]] = {}
    for ext, user_id in sorted(mapping.items(), key=lambda kv: (len(kv[0]), kv[0])):
        result.setdefault(user_id, []).append(ext)
    return result
