ALTER TABLE app_credentials DROP COLUMN certificate_thumbprint;
ALTER TABLE app_credentials DROP COLUMN certificate_pem;
ALTER TABLE app_credentials DROP COLUMN credential_type;
