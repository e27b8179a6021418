-- vochi-crm's own tables.

-- SSH access to a unit's PBX beyond the platform's enterprises.ip / host.
CREATE TABLE IF NOT EXISTS vochi_pbx (
    enterprise_number TEXT PRIMARY KEY,
    ssh_port          INTEGER NOT NULL DEFAULT 5059 CHECK (ssh_port BETWEEN 1 AND 65535),
    ssh_user          TEXT NOT NULL DEFAULT 'root',
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The durable event queue and journal: one row per accepted call event. Idempotency: one row per
-- (unit, UniqueId, event type, dedup_key); dedup_key is '' for hangup/download (one per call) and a
-- hash of the payload for the events a call may carry several of (dial, bridge).
CREATE TABLE IF NOT EXISTS retailcrm_events (
    id                BIGSERIAL PRIMARY KEY,
    enterprise_number TEXT NOT NULL,
    call_unique_id    TEXT NOT NULL,
    event_type        TEXT NOT NULL,
    dedup_key         TEXT NOT NULL DEFAULT '',
    payload           JSONB NOT NULL,
    status            TEXT NOT NULL DEFAULT 'pending',
    attempts          INTEGER NOT NULL DEFAULT 0,
    progress          INTEGER NOT NULL DEFAULT 0,  -- RetailCRM requests of the plan already sent
    next_attempt_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_until       TIMESTAMPTZ,
    leased_by         TEXT,
    last_error        TEXT,
    received_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at      TIMESTAMPTZ,
    CONSTRAINT retailcrm_events_idempotency
        UNIQUE (enterprise_number, call_unique_id, event_type, dedup_key)
);
CREATE INDEX IF NOT EXISTS retailcrm_events_call
    ON retailcrm_events (enterprise_number, call_unique_id, id);

-- What the earlier events of a call told the mapping (who answered, when it started, ...).
CREATE TABLE IF NOT EXISTS retailcrm_calls (
    enterprise_number TEXT NOT NULL,
    call_unique_id    TEXT NOT NULL,
    state             JSONB NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (enterprise_number, call_unique_id)
);
CREATE INDEX IF NOT EXISTS retailcrm_events_due
    ON retailcrm_events (next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS retailcrm_events_unit_time
    ON retailcrm_events (enterprise_number, received_at);
-- tail-logs follows events by update time; replay selects failed/expired; show finds a call by id
CREATE INDEX IF NOT EXISTS retailcrm_events_updated
    ON retailcrm_events (updated_at);
CREATE INDEX IF NOT EXISTS retailcrm_events_replayable
    ON retailcrm_events (id) WHERE status IN ('failed', 'expired');
CREATE INDEX IF NOT EXISTS retailcrm_events_call_id
    ON retailcrm_events (call_unique_id);
