-- Sign-in, tokens and audit. Token columns hold ciphertext only.
ALTER TABLE mailboxes ADD COLUMN access_token TEXT;
ALTER TABLE mailboxes ADD COLUMN access_token_expires_at TIMESTAMP;
ALTER TABLE mailboxes ADD COLUMN refresh_token TEXT;
-- Bumped by every token write; a write only succeeds against the version it read.
ALTER TABLE mailboxes ADD COLUMN token_version BIGINT NOT NULL DEFAULT 0;
-- One refresh at a time per mailbox across instances: the holder of an unexpired lease refreshes.
ALTER TABLE mailboxes ADD COLUMN refresh_lease_until TIMESTAMP;
-- The last transient failure (the status is left as it was).
ALTER TABLE mailboxes ADD COLUMN last_error_code TEXT;
ALTER TABLE mailboxes ADD COLUMN last_error_message TEXT;
ALTER TABLE mailboxes ADD COLUMN last_error_at TIMESTAMP;

-- A problem with the app credential itself (wrong secret, expired secret, unknown app).
ALTER TABLE app_credentials ADD COLUMN problem_code TEXT;
ALTER TABLE app_credentials ADD COLUMN problem_message TEXT;
ALTER TABLE app_credentials ADD COLUMN consent_granted_at TIMESTAMP;

-- Pending sign-ins and admin-consent requests, found by the hash of their state.
CREATE TABLE authorizations (
    id TEXT PRIMARY KEY NOT NULL,
    org TEXT NOT NULL,
    kind TEXT NOT NULL,
    mailbox_id TEXT REFERENCES mailboxes (id) ON DELETE CASCADE,
    app_credential_id TEXT NOT NULL REFERENCES app_credentials (id) ON DELETE CASCADE,
    state_hash TEXT NOT NULL UNIQUE,
    pkce_verifier TEXT,
    nonce TEXT,
    return_url TEXT,
    actor TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL
);

-- Append-only record of who did what; never holds secret values.
CREATE TABLE audit_events (
    id TEXT PRIMARY KEY NOT NULL,
    org TEXT NOT NULL,
    at TIMESTAMP NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id TEXT,
    outcome TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX audit_events_org_id ON audit_events (org, id);
