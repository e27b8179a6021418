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
