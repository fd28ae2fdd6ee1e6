-- How an app credential proves itself to Microsoft: `secret` (a client
-- secret) or `certificate` (a client assertion signed with a private key;
-- domain::CredentialType). For a certificate, `client_secret` holds the
-- sealed private key (PKCS#8 PEM), `certificate_pem` the public certificate
-- and `certificate_thumbprint` its SHA-256 (hex); `secret_expires_at` is
-- the certificate's expiry date.
ALTER TABLE app_credentials ADD COLUMN credential_type TEXT NOT NULL DEFAULT 'secret';
ALTER TABLE app_credentials ADD COLUMN certificate_pem TEXT;
ALTER TABLE app_credentials ADD COLUMN certificate_thumbprint TEXT;
