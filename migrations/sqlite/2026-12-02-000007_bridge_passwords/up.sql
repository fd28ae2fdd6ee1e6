-- Bridge passwords: a legacy IMAP or SMTP client logs in to the bridge with
-- one of these instead of OAuth. Each is stored only as an Argon2id PHC hash;
-- `selector` is the password's first, non-secret part, which finds its row.
-- A revoked password keeps its row (so a login with it is told "revoked").
CREATE TABLE bridge_passwords (
    id TEXT PRIMARY KEY NOT NULL,
    org TEXT NOT NULL,
    mailbox_id TEXT NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    selector TEXT NOT NULL UNIQUE,
    hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP,
    revoked_at TIMESTAMP,
    last_used_at TIMESTAMP,
    last_used_from TEXT
);
CREATE INDEX bridge_passwords_mailbox ON bridge_passwords (org, mailbox_id, id);

-- The bridge's user name is a mailbox's address where no other organisation
-- has a mailbox with it: that is asked across organisations.
CREATE INDEX mailboxes_email ON mailboxes (email);
