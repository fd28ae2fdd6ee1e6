-- Where each bridge password logs in from: one row per password and source
-- address. A login from an address the password never used is audited as
-- such; after that, a login is audited once per address and UTC day
-- (`last_audited_at`), not once per session.
CREATE TABLE bridge_logins (
    password_id TEXT NOT NULL REFERENCES bridge_passwords (id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    first_at TIMESTAMP NOT NULL,
    last_audited_at TIMESTAMP NOT NULL,
    PRIMARY KEY (password_id, address)
);
