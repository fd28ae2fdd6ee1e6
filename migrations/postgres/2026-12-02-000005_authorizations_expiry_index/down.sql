DROP INDEX authorizations_expires_at;
