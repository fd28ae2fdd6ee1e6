UPDATE app_credentials SET consent_granted_at = consent_reported_at WHERE consent_granted_at IS NULL;
ALTER TABLE app_credentials DROP COLUMN consent_tenant;
ALTER TABLE app_credentials DROP COLUMN consent_reported_at;
ALTER TABLE app_credentials DROP COLUMN tenant_guid;
ALTER TABLE mailboxes DROP COLUMN identity_tid;
ALTER TABLE mailboxes DROP COLUMN identity_oid;
ALTER TABLE authorizations DROP COLUMN token_version;
