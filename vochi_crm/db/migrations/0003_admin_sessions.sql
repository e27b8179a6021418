-- Sessions of the admin web UI (/retailcrm-admin/), created when a signed token is exchanged.
-- The session id lives only in the admin's HttpOnly cookie: the table keeps its SHA-256, so a
-- leaked dump of this table opens no session. A session is scoped to one unit, or to all units
-- (super, for ops); csrf_token is the per-session token every form must carry.
CREATE TABLE IF NOT EXISTS vochi_admin_sessions (
    id_hash           TEXT PRIMARY KEY,
    enterprise_number TEXT,
    super             BOOLEAN NOT NULL DEFAULT FALSE,
    subject           TEXT,
    csrf_token        TEXT NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at        TIMESTAMPTZ NOT NULL,
    CONSTRAINT vochi_admin_sessions_scope CHECK (super OR enterprise_number IS NOT NULL)
);
CREATE INDEX IF NOT EXISTS vochi_admin_sessions_expiry ON vochi_admin_sessions (expires_at);
