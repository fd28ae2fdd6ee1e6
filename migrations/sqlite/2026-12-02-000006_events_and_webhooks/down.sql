DROP TABLE credential_notices;
DROP TABLE delivery_attempts;
DROP TABLE deliveries;
DROP TABLE email_alerts;
DROP TABLE webhooks;
DROP TABLE events;
