ALTER TABLE mailboxes DROP COLUMN graph_access_token_expires_at;
ALTER TABLE mailboxes DROP COLUMN graph_access_token;
ALTER TABLE mailboxes DROP COLUMN transport;
ALTER TABLE app_credentials DROP COLUMN graph;
