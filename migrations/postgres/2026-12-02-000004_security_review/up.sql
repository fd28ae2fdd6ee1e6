-- Fixes of the outside security review.

-- The mailbox's token version when a sign-in started: the callback writes its
-- tokens only onto that version, so a settings change during the code
-- redemption wins over the sign-in.
ALTER TABLE authorizations ADD COLUMN token_version BIGINT;

-- The identity a mailbox was connected with (Entra ID object id and tenant id
-- from the id_token), pinned from the first sign-in on: a later sign-in by
-- another object id is refused, whatever its user name says.
ALTER TABLE mailboxes ADD COLUMN identity_oid TEXT;
ALTER TABLE mailboxes ADD COLUMN identity_tid TEXT;

-- The tenant GUID Microsoft answered with, when the credential names its
-- tenant by a domain; later sign-ins and consents are held to it.
ALTER TABLE app_credentials ADD COLUMN tenant_guid TEXT;
-- Admin consent as the browser reported it (which tenant, when); verify
-- confirms it with a token request before it counts as established
-- (consent_granted_at).
ALTER TABLE app_credentials ADD COLUMN consent_reported_at TIMESTAMP;
ALTER TABLE app_credentials ADD COLUMN consent_tenant TEXT;
-- Consents recorded so far came from the browser unchecked: reported, not established.
UPDATE app_credentials SET consent_reported_at = consent_granted_at, consent_granted_at = NULL
    WHERE consent_granted_at IS NOT NULL;

-- Mailbox addresses accepted by older versions that the strict parse
-- refuses are marked (status `error`, detail `invalid_address`) by the
-- service right after this migration (store::addresses), which needs the
-- parser in Rust.
