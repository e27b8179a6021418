-- The platform's own tables, created only where they do not exist (standalone installs and tests).
-- On the platform database these statements change nothing of what is there: no column is dropped,
-- renamed or retyped, and no row is touched.
CREATE TABLE IF NOT EXISTS enterprises (
    number              TEXT PRIMARY KEY,
    name                TEXT NOT NULL DEFAULT '',
    name2               TEXT,
    secret              TEXT,
    ip                  TEXT,
    host                TEXT,
    active              BOOLEAN NOT NULL DEFAULT TRUE,
    integrations_config JSONB DEFAULT '{}'::jsonb
);
ALTER TABLE enterprises ADD COLUMN IF NOT EXISTS integrations_config JSONB DEFAULT '{}'::jsonb;

CREATE TABLE IF NOT EXISTS integration_logs (
    id                SERIAL PRIMARY KEY,
    enterprise_number TEXT NOT NULL,
    integration_type  VARCHAR(50) NOT NULL,
    event_type        VARCHAR(50) NOT NULL,
    request_data      JSONB,
    response_data     JSONB,
    status            VARCHAR(20) NOT NULL,
    error_message     TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
ALTER TABLE integration_logs ADD COLUMN IF NOT EXISTS call_unique_id TEXT;
ALTER TABLE integration_logs ADD COLUMN IF NOT EXISTS phone_number TEXT;
ALTER TABLE integration_logs ADD COLUMN IF NOT EXISTS internal_extension TEXT;
ALTER TABLE integration_logs ADD COLUMN IF NOT EXISTS response_time_ms INTEGER;
ALTER TABLE integration_logs ADD COLUMN IF NOT EXISTS updated_at TIMESTAMPTZ;
CREATE INDEX IF NOT EXISTS vochi_integration_logs_unit_time
    ON integration_logs (enterprise_number, created_at);
CREATE INDEX IF NOT EXISTS vochi_integration_logs_call
    ON integration_logs (call_unique_id);
