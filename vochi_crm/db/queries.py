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

# One statement per batch; a row that conflicts (a retransmission) is not returned.
EVENTS_INSERT = """
INSERT INTO retailcrm_events (enterprise_number, call_unique_id, event_type, dedup_key, payload)
SELECT * FROM unnest(%(units)s::text[], %(calls)s::text[], %(types)s::text[],
                     %(keys)s::text[], %(payloads)s::jsonb[])
ON CONFLICT (enterprise_number, call_unique_id, event_type, dedup_key) DO NOTHING
RETURNING id, enterprise_number, call_unique_id, event_type, dedup_key"""
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
