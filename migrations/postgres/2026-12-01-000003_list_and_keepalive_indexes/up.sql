-- Pages of an organisation's mailboxes in id order (GET /mailboxes without a
-- status filter) read the index instead of sorting every mailbox of the org.
CREATE INDEX mailboxes_org_id ON mailboxes (org, id);
-- The keep-alive's sweep: active grants by the age of their refresh token.
CREATE INDEX mailboxes_keepalive ON mailboxes (status, refresh_token_issued_at);
