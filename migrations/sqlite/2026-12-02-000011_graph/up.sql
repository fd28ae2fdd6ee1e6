-- Microsoft Graph. `graph` on an app credential: its sign-ins also ask for
-- Graph's Mail.ReadWrite and Mail.Send, so its mailboxes can be handed
-- Graph tokens (off for existing credentials: their consents stay valid).
-- `transport` of a mailbox: `imap_smtp` or `graph` (domain::Transport),
-- what its check runs. A mailbox's Graph access token (sealed like the
-- Exchange one) and its expiry; the refresh token is the same grant's.
ALTER TABLE app_credentials ADD COLUMN graph BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE mailboxes ADD COLUMN transport TEXT NOT NULL DEFAULT 'imap_smtp';
ALTER TABLE mailboxes ADD COLUMN graph_access_token TEXT;
ALTER TABLE mailboxes ADD COLUMN graph_access_token_expires_at TIMESTAMP;
