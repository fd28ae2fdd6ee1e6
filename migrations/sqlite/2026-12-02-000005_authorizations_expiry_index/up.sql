-- The housekeeping pass deletes expired sign-ins and admin-consent requests
-- (`expires_at < now`) every minute: an index keeps that a range read
-- instead of a scan of every pending authorization.
CREATE INDEX authorizations_expires_at ON authorizations (expires_at);
