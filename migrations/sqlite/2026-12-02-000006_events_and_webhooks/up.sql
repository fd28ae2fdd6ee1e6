-- Events: written in the same transaction as the change that causes them
-- (a transactional outbox), read as a feed and delivered to webhooks and
-- e-mail alerts. Ids are UUID v7: their order is the events' order.
CREATE TABLE events (
    id TEXT PRIMARY KEY NOT NULL,
    org TEXT NOT NULL,
    type TEXT NOT NULL,
    -- The entity the event is about (deliveries keep its events in order).
    subject_id TEXT NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX events_org_id ON events (org, id);
CREATE INDEX events_occurred_at ON events (occurred_at);

-- Webhook endpoints. Secrets are encrypted like every other secret; the
-- previous one keeps signing for a while after a rotation.
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY NOT NULL,
    org TEXT NOT NULL,
    url TEXT NOT NULL,
    -- A JSON array of event types, or NULL for every type.
    event_types TEXT,
    description TEXT,
    enabled BOOLEAN NOT NULL,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_secret_until TIMESTAMP,
    -- The first failure of the current run of failures.
    failing_since TIMESTAMP,
    disabled_reason TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (org, id)
);
CREATE INDEX webhooks_org_id ON webhooks (org, id);

-- E-mail alerts: messages to people, sent from one of the organisation's mailboxes.
CREATE TABLE email_alerts (
    id TEXT PRIMARY KEY NOT NULL,
    org TEXT NOT NULL,
    -- A JSON array of addresses.
    recipients TEXT NOT NULL,
    sender_mailbox_id TEXT NOT NULL,
    event_types TEXT,
    language TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    last_error_code TEXT,
    last_error_message TEXT,
    last_error_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX email_alerts_org_id ON email_alerts (org, id);

-- One delivery of one event to one target (a webhook or an e-mail alert),
-- with the lease of the instance that is delivering it.
CREATE TABLE deliveries (
    id TEXT PRIMARY KEY NOT NULL,
    org TEXT NOT NULL,
    channel TEXT NOT NULL,
    target_id TEXT NOT NULL,
    event_id TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    subject_id TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at TIMESTAMP,
    lease_until TIMESTAMP,
    lease_owner TEXT,
    last_status INTEGER,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
-- The claim walks the pending deliveries in event order and stops at its
-- limit (an index on next_attempt_at made it sort every pending row at each
-- claim); the order rule looks up an earlier pending delivery of the same
-- target and subject without reading the delivered ones.
CREATE INDEX deliveries_due ON deliveries (state, event_id);
CREATE INDEX deliveries_order ON deliveries (target_id, subject_id, state, event_id);

-- Each attempt of a delivery, for the deliveries list.
CREATE TABLE delivery_attempts (
    id TEXT PRIMARY KEY NOT NULL,
    org TEXT NOT NULL,
    delivery_id TEXT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    target_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    at TIMESTAMP NOT NULL,
    status_code INTEGER,
    error TEXT,
    duration_ms BIGINT NOT NULL,
    response TEXT,
    next_retry_at TIMESTAMP
);
CREATE INDEX delivery_attempts_target ON delivery_attempts (target_id, id);

-- Secret-expiry notices already given: once per credential, threshold and
-- expiry date, whichever instance's sweep finds it first.
CREATE TABLE credential_notices (
    app_credential_id TEXT NOT NULL REFERENCES app_credentials (id) ON DELETE CASCADE,
    threshold_days INTEGER NOT NULL,
    expires_on DATE NOT NULL,
    PRIMARY KEY (app_credential_id, threshold_days, expires_on)
);
