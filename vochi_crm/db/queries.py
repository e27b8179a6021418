"""Every SQL statement of the core, named, in one place.

Parameters are psycopg named placeholders. Statements that write the platform's ``enterprises``
table touch only ``integrations_config -> 'retailcrm'`` and only in one statement.
"""

from __future__ import annotations

CONFIG_CHANNEL = "integration_config_changed"

# -- migrations ----------------------------------------------------------------------------------

MIGRATIONS_LOCK = "SELECT pg_advisory_xact_lock(hashtext('vochi-crm:migrations'))"
MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS vochi_schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)"""
MIGRATIONS_APPLIED = "SELECT version FROM vochi_schema_migrations"
MIGRATION_RECORD = (
    "INSERT INTO vochi_schema_migrations (version, name) VALUES (%(version)s, %(name)s)"
)

# -- units ---------------------------------------------------------------------------------------

_UNIT_COLUMNS = """
    e.number, e.name, e.name2, e.ip, e.host, e.active,
    COALESCE(p.ssh_port, 5059) AS ssh_port, COALESCE(p.ssh_user, 'root') AS ssh_user,
    CASE WHEN jsonb_typeof(e.integrations_config) = 'object'
         THEN e.integrations_config -> 'retailcrm' END AS retailcrm
"""
UNITS_LIST = f"""
SELECT {_UNIT_COLUMNS}
FROM enterprises e LEFT JOIN vochi_pbx p ON p.enterprise_number = e.number
ORDER BY e.number"""
UNIT_GET = f"""
SELECT {_UNIT_COLUMNS}
FROM enterprises e LEFT JOIN vochi_pbx p ON p.enterprise_number = e.number
WHERE e.number = %(number)s"""
UNIT_INSERT = """
INSERT INTO enterprises (number, name, name2, ip, active)
VALUES (%(number)s, %(name)s, %(name2)s, %(ip)s, TRUE)
ON CONFLICT DO NOTHING
RETURNING number"""
UNIT_PBX_UPSERT = """
INSERT INTO vochi_pbx (enterprise_number, ssh_port)
VALUES (%(number)s, %(ssh_port)s)
ON CONFLICT (enterprise_number) DO UPDATE SET ssh_port = EXCLUDED.ssh_port, updated_at = now()"""

# -- RetailCRM config ----------------------------------------------------------------------------

# Compare-and-swap of our key only: succeeds when nobody changed ``retailcrm`` since we read it.
# Other integrations' keys are carried through untouched by jsonb_set.
CONFIG_WRITE = """
UPDATE enterprises
SET integrations_config = jsonb_set(
        CASE WHEN jsonb_typeof(integrations_config) = 'object'
             THEN integrations_config ELSE '{}'::jsonb END,
        '{retailcrm}', %(new)s::jsonb, true)
WHERE number = %(number)s
  AND (CASE WHEN jsonb_typeof(integrations_config) = 'object'
            THEN integrations_config -> 'retailcrm' END) IS NOT DISTINCT FROM %(old)s::jsonb
RETURNING number"""
CONFIG_DELETE = """
UPDATE enterprises
SET integrations_config = integrations_config - 'retailcrm'
WHERE number = %(number)s AND jsonb_typeof(integrations_config) = 'object'
RETURNING number"""
CONFIG_NOTIFY = "SELECT pg_notify(%(channel)s, %(payload)s)"

# -- health --------------------------------------------------------------------------------------

PING = "SELECT 1"

# -- units by token (ingest) ---------------------------------------------------------------------

UNIT_BY_TOKEN = f"""
SELECT {_UNIT_COLUMNS}
FROM enterprises e LEFT JOIN vochi_pbx p ON p.enterprise_number = e.number
WHERE e.name2 = %(token)s
ORDER BY e.number
LIMIT 1"""

# -- event queue ---------------------------------------------------------------------------------

EVENTS_CHANNEL = "retailcrm_events_ready"

# One autocommit statement (one round trip, one COMMIT) per batch: the insert, and one wake-up
# for the dispatcher when anything new was stored (the uncorrelated subquery runs once, and only
# when a row comes out). A row that conflicts (a retransmission) is not returned.
EVENTS_INSERT = f"""
WITH inserted AS (
    INSERT INTO retailcrm_events
        (enterprise_number, call_unique_id, event_type, dedup_key, payload)
    SELECT * FROM unnest(%(units)s::text[], %(calls)s::text[], %(types)s::text[],
                         %(keys)s::text[], %(payloads)s::jsonb[])
    ON CONFLICT (enterprise_number, call_unique_id, event_type, dedup_key) DO NOTHING
    RETURNING id, enterprise_number, call_unique_id, event_type, dedup_key)
SELECT inserted.*, (SELECT pg_notify('{EVENTS_CHANNEL}', '')::text) AS woke
FROM inserted"""
EVENTS_NOTIFY = f"SELECT pg_notify('{EVENTS_CHANNEL}', '')"

# -- delivery ------------------------------------------------------------------------------------

DISPATCHER_LOCK = "SELECT pg_try_advisory_lock(hashtext('vochi-crm:dispatcher')) AS held"

# Due events whose call has no earlier unfinished event (per-call order), oldest first.
EVENTS_CLAIM = """
WITH due AS (
    SELECT e.id
    FROM retailcrm_events e
    WHERE e.status = 'pending' AND e.next_attempt_at <= now()
      AND NOT EXISTS (
          SELECT 1 FROM retailcrm_events p
          WHERE p.enterprise_number = e.enterprise_number
            AND p.call_unique_id = e.call_unique_id
            AND p.id < e.id AND p.status IN ('pending', 'processing'))
    ORDER BY e.next_attempt_at, e.id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED)
UPDATE retailcrm_events e
SET status = 'processing', lease_until = now() + make_interval(secs => %(lease)s),
    leased_by = %(worker)s, updated_at = now()
FROM due
WHERE e.id = due.id
RETURNING e.id, e.enterprise_number, e.call_unique_id, e.event_type, e.payload, e.attempts,
          e.progress, e.received_at,
          (SELECT c.state FROM retailcrm_calls c
           WHERE c.enterprise_number = e.enterprise_number
             AND c.call_unique_id = e.call_unique_id) AS call_state"""

EVENT_FINISH = """
UPDATE retailcrm_events
SET status = %(status)s, attempts = %(attempts)s, progress = %(progress)s,
    next_attempt_at = COALESCE(%(next_attempt_at)s, next_attempt_at),
    last_error = %(last_error)s, lease_until = NULL, leased_by = NULL, updated_at = now(),
    delivered_at = CASE WHEN %(status)s = 'delivered' THEN now() ELSE delivered_at END
WHERE id = %(id)s AND leased_by = %(worker)s"""

CALL_STATE_SAVE = """
INSERT INTO retailcrm_calls (enterprise_number, call_unique_id, state)
VALUES (%(unit)s, %(call)s, %(state)s)
ON CONFLICT (enterprise_number, call_unique_id)
DO UPDATE SET state = EXCLUDED.state, updated_at = now()"""

EVENTS_RECLAIM = """
UPDATE retailcrm_events
SET status = 'pending', leased_by = NULL, lease_until = NULL, updated_at = now()
WHERE status = 'processing' AND lease_until < now()"""

# Heartbeat: events still being worked on keep their lease (a rate-limit wait can be long).
EVENTS_EXTEND_LEASES = """
UPDATE retailcrm_events SET lease_until = now() + make_interval(secs => %(lease)s)
WHERE id = ANY(%(ids)s) AND status = 'processing' AND leased_by = %(worker)s"""

# Follow-me: bridges of the unit's other calls with the customer on one side, during this call's
# life (vochi_crm.pipeline.linking).
LINKED_LEGS = r"""
SELECT b.payload, b.received_at
FROM retailcrm_events b
WHERE b.enterprise_number = %(unit)s AND b.event_type = 'bridge'
  AND b.call_unique_id <> %(call)s
  AND %(customer)s IN (regexp_replace(b.payload->>'CallerIDNum', '\D', '', 'g'),
                       regexp_replace(b.payload->>'ConnectedLineNum', '\D', '', 'g'))
  AND b.received_at >= (SELECT min(c.received_at) FROM retailcrm_events c
                        WHERE c.enterprise_number = %(unit)s AND c.call_unique_id = %(call)s)
  AND b.received_at <= %(until)s
ORDER BY b.received_at, b.id
LIMIT %(limit)s"""

EVENTS_WAKE_UNIT = """
UPDATE retailcrm_events SET next_attempt_at = now()
WHERE enterprise_number = %(unit)s AND status = 'pending' AND next_attempt_at > now()"""

QUEUE_DEPTH = """
SELECT enterprise_number, count(*) AS pending,
       EXTRACT(EPOCH FROM now() - min(received_at)) AS oldest_pending_seconds
FROM retailcrm_events
WHERE status IN ('pending', 'processing')
GROUP BY enterprise_number
ORDER BY enterprise_number"""

JOURNAL_INSERT = """
INSERT INTO integration_logs (enterprise_number, integration_type, event_type, request_data,
                              response_data, status, error_message, call_unique_id, phone_number,
                              internal_extension, response_time_ms)
VALUES (%(unit)s, 'retailcrm', %(event_type)s, %(request)s, %(response)s, %(status)s,
        %(error)s, %(call)s, %(phone)s, %(extension)s, %(elapsed_ms)s)"""

# -- integration module registration (vochi_crm.registration) ------------------------------------

# Queue a module (de)registration in the config write's own transaction, unless one for the same
# content still waits to be claimed (a waiting row reads the config when it is delivered, so it
# already covers this write). ``dedup_key`` is ``<content digest>.<random>``: a later identical
# registration (A → B → A) becomes a new row behind B, never a re-armed old row jumping ahead of it.
MODULE_EVENT_QUEUE = """
INSERT INTO retailcrm_events (enterprise_number, call_unique_id, event_type, dedup_key, payload)
SELECT %(unit)s, %(call)s, %(event_type)s, %(dedup_key)s, '{}'::jsonb
WHERE NOT EXISTS (
    SELECT 1 FROM retailcrm_events
    WHERE enterprise_number = %(unit)s AND call_unique_id = %(call)s
      AND event_type = %(event_type)s AND status = 'pending'
      AND starts_with(dedup_key, %(digest)s || '.'))
RETURNING id"""

# -- journal, event listing and replay (vochi_crm.journal, vochi_crm.replay) ---------------------
# Optional filters are fixed SQL with ``%(x)s IS NULL OR …`` guards: every user value is a bound
# parameter, and PostgreSQL folds the guard away when it plans with the actual values.

JOURNAL_CHANNEL = "retailcrm_journal"
# Sent by the delivery store once per committed batch of outcomes / journal rows.
JOURNAL_NOTIFY = f"SELECT pg_notify('{JOURNAL_CHANNEL}', '')"

_EVENT_COLUMNS = """id, enterprise_number, call_unique_id, event_type, status, attempts, progress,
    next_attempt_at, last_error, received_at, updated_at, delivered_at"""
EVENTS_LIST = f"""
SELECT {_EVENT_COLUMNS}
FROM retailcrm_events
WHERE (%(unit)s::text IS NULL OR enterprise_number = %(unit)s)
  AND (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))
  AND (%(call)s::text IS NULL OR call_unique_id = %(call)s)
  AND (%(since)s::timestamptz IS NULL OR received_at >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR received_at < %(until)s)
ORDER BY id DESC
LIMIT %(limit)s"""
EVENTS_BY_IDS = """
SELECT id, enterprise_number, call_unique_id, event_type, status
FROM retailcrm_events WHERE id = ANY(%(ids)s::bigint[])"""
EVENT_CALL_UNITS = """
SELECT DISTINCT enterprise_number FROM retailcrm_events
WHERE call_unique_id = %(call)s ORDER BY enterprise_number LIMIT 20"""
CALL_EVENTS = f"""
SELECT {_EVENT_COLUMNS}, payload
FROM retailcrm_events
WHERE enterprise_number = %(unit)s AND call_unique_id = %(call)s
ORDER BY id"""

_JOURNAL_COLUMNS = """id, enterprise_number, event_type, call_unique_id, phone_number,
    internal_extension, status, error_message, response_time_ms, created_at, request_data,
    response_data"""
CALL_JOURNAL = f"""
SELECT {_JOURNAL_COLUMNS}
FROM integration_logs
WHERE integration_type = 'retailcrm' AND enterprise_number = %(unit)s
  AND call_unique_id = %(call)s
ORDER BY created_at, id"""
_JOURNAL_FILTERS = """integration_type = 'retailcrm'
  AND (%(unit)s::text IS NULL OR enterprise_number = %(unit)s)
  AND (%(status)s::text IS NULL OR status = %(status)s)
  AND (%(call)s::text IS NULL OR call_unique_id = %(call)s)
  AND (%(since)s::timestamptz IS NULL OR created_at >= %(since)s)"""
JOURNAL_LATEST = f"""
SELECT {_JOURNAL_COLUMNS} FROM integration_logs
WHERE {_JOURNAL_FILTERS}
ORDER BY id DESC LIMIT %(limit)s"""
JOURNAL_AFTER = f"""
SELECT {_JOURNAL_COLUMNS} FROM integration_logs
WHERE {_JOURNAL_FILTERS} AND id > %(after)s
ORDER BY id LIMIT %(limit)s"""
# Read before the rows: what was committed by then is visible to the statements that follow.
JOURNAL_CLOCK = "SELECT now() AS now, (SELECT max(id) FROM integration_logs) AS max_id"

_EVENT_CHANGE_FILTERS = """(%(unit)s::text IS NULL OR enterprise_number = %(unit)s)
  AND status = ANY(%(statuses)s::text[])
  AND (%(call)s::text IS NULL OR call_unique_id = %(call)s)
  AND (%(since)s::timestamptz IS NULL OR updated_at >= %(since)s)"""
EVENTS_CHANGED_LATEST = f"""
SELECT {_EVENT_COLUMNS} FROM retailcrm_events
WHERE {_EVENT_CHANGE_FILTERS}
ORDER BY updated_at DESC, id DESC LIMIT %(limit)s"""
EVENTS_CHANGED_AFTER = f"""
SELECT {_EVENT_COLUMNS} FROM retailcrm_events
WHERE {_EVENT_CHANGE_FILTERS}
  AND (updated_at, id) > (%(after)s::timestamptz, %(after_id)s::bigint)
ORDER BY updated_at, id LIMIT %(limit)s"""

UNITS_BY_NUMBERS = f"""
SELECT {_UNIT_COLUMNS}
FROM enterprises e LEFT JOIN vochi_pbx p ON p.enterprise_number = e.number
WHERE e.number = ANY(%(numbers)s::text[])"""

_REPLAY_FILTERS = """status = ANY(%(statuses)s::text[])
      AND (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s::bigint[]))
      AND (%(unit)s::text IS NULL OR enterprise_number = %(unit)s)
      AND (%(since)s::timestamptz IS NULL OR received_at >= %(since)s)
      AND (%(until)s::timestamptz IS NULL OR received_at < %(until)s)"""
# Which units the matching events belong to: their configs decide what may be replayed. Call
# events need the integration enabled; module (de)registration events (``ungated``) only need
# credentials: their delivery reads the config and decides (a disabled unit's module is
# deactivated).
REPLAY_UNITS = f"""
SELECT enterprise_number,
       count(*) FILTER (WHERE event_type <> ALL(%(ungated)s::text[])) AS gated,
       count(*) FILTER (WHERE event_type = ANY(%(ungated)s::text[])) AS ungated
FROM retailcrm_events
WHERE {_REPLAY_FILTERS}
GROUP BY enterprise_number ORDER BY enterprise_number"""
_REPLAY_DELIVERABLE = """(enterprise_number = ANY(%(units_ok)s::text[])
           OR (event_type = ANY(%(ungated)s::text[])
               AND enterprise_number = ANY(%(units_configured)s::text[])))"""
REPLAY_PREVIEW = f"""
SELECT id, enterprise_number, call_unique_id, event_type, status AS previous_status,
       last_error AS previous_error
FROM retailcrm_events
WHERE {_REPLAY_FILTERS} AND {_REPLAY_DELIVERABLE}
ORDER BY id LIMIT %(limit)s"""
# One statement per batch. SKIP LOCKED + the status condition (re-checked on the row's latest
# version when a concurrent transaction changed it) mean two replays never requeue one row twice.
# ``progress`` is kept (requests RetailCRM already has are not re-sent), ``received_at`` is kept
# (ring TTL and history age count from reception), ``attempts`` restarts (the retry policy starts
# afresh), ``last_error`` is cleared (returned here as previous_error; RetailCRM's answers stay in
# integration_logs).
EVENTS_REPLAY = f"""
WITH picked AS (
    SELECT id, status AS previous_status, last_error AS previous_error
    FROM retailcrm_events
    WHERE {_REPLAY_FILTERS}
      AND {_REPLAY_DELIVERABLE}
      AND id > %(after)s
    ORDER BY id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED)
UPDATE retailcrm_events e
SET status = 'pending', attempts = 0, next_attempt_at = now(), last_error = NULL,
    lease_until = NULL, leased_by = NULL, updated_at = now()
FROM picked
WHERE e.id = picked.id
RETURNING e.id, e.enterprise_number, e.call_unique_id, e.event_type, picked.previous_status,
          picked.previous_error"""

# -- admin web UI: sessions and the journal views (vochi_crm.admin_auth, vochi_crm.admin_views) ---

ADMIN_SESSION_INSERT = """
INSERT INTO vochi_admin_sessions (id_hash, enterprise_number, super, subject, csrf_token,
                                  expires_at)
VALUES (%(id_hash)s, %(unit)s, %(super)s, %(subject)s, %(csrf)s,
        now() + make_interval(secs => %(ttl)s))
RETURNING id_hash, enterprise_number, super, subject, csrf_token, created_at, expires_at"""
ADMIN_SESSION_GET = """
SELECT id_hash, enterprise_number, super, subject, csrf_token, created_at, expires_at
FROM vochi_admin_sessions WHERE id_hash = %(id_hash)s AND expires_at > now()"""
ADMIN_SESSION_DELETE = "DELETE FROM vochi_admin_sessions WHERE id_hash = %(id_hash)s"
ADMIN_SESSIONS_PURGE = "DELETE FROM vochi_admin_sessions WHERE expires_at <= now()"

# The admin journal: a unit's events with the phone and extensions of their payload; the filters
# are bound parameters with IS NULL guards, like the journal's.
ADMIN_EVENTS = """
SELECT id, enterprise_number, call_unique_id, event_type, status, attempts, progress,
       next_attempt_at, last_error, received_at, updated_at, delivered_at,
       COALESCE(payload ->> 'Phone', payload ->> 'CallerIDNum') AS phone,
       CASE WHEN jsonb_typeof(payload -> 'Extensions') = 'array'
            THEN payload -> 'Extensions' END AS extensions
FROM retailcrm_events
WHERE enterprise_number = %(unit)s
  AND (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))
  AND (%(call)s::text IS NULL OR call_unique_id = %(call)s)
  AND (%(phone)s::text IS NULL OR strpos(COALESCE(payload ->> 'Phone', '') || ' '
       || COALESCE(payload ->> 'CallerIDNum', ''), %(phone)s) > 0)
  AND (%(since)s::timestamptz IS NULL OR received_at >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR received_at < %(until)s)
ORDER BY id DESC
LIMIT %(limit)s"""
ADMIN_REQUESTS = """
SELECT id, enterprise_number, event_type, call_unique_id, phone_number, internal_extension,
       status, error_message, response_time_ms, created_at, NULL::jsonb AS request_data,
       NULL::jsonb AS response_data
FROM integration_logs
WHERE integration_type = 'retailcrm' AND enterprise_number = %(unit)s
  AND (%(status)s::text IS NULL OR status = %(status)s)
  AND (%(call)s::text IS NULL OR call_unique_id = %(call)s)
  AND (%(phone)s::text IS NULL OR strpos(COALESCE(phone_number, ''), %(phone)s) > 0)
  AND (%(since)s::timestamptz IS NULL OR created_at >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR created_at < %(until)s)
ORDER BY id DESC
LIMIT %(limit)s"""
ADMIN_EVENT_UNITS = """
SELECT id, enterprise_number FROM retailcrm_events WHERE id = ANY(%(ids)s::bigint[])"""
# The unit's extensions: the platform's user_internal_phones where that table exists, the ones
# seen in the unit's recent events.
ADMIN_HAS_PLATFORM_PHONES = "SELECT to_regclass('user_internal_phones') IS NOT NULL AS present"
ADMIN_PLATFORM_PHONES = """
SELECT DISTINCT phone_number::text AS extension FROM user_internal_phones
WHERE enterprise_number = %(unit)s AND phone_number IS NOT NULL LIMIT 1000"""
ADMIN_SEEN_EXTENSIONS = """
SELECT DISTINCT ext AS extension FROM (
    SELECT payload FROM retailcrm_events
    WHERE enterprise_number = %(unit)s ORDER BY id DESC LIMIT 5000) recent,
    LATERAL jsonb_array_elements_text(
        CASE WHEN jsonb_typeof(recent.payload -> 'Extensions') = 'array'
             THEN recent.payload -> 'Extensions' ELSE '[]'::jsonb END) AS ext
LIMIT 1000"""
