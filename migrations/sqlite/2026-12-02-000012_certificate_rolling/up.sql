-- Rolling a certificate credential: the certificate it replaced stays
-- usable until the new one has been seen to work. Its public certificate
-- and thumbprint here; its private key is sealed with the new one in
-- `client_secret` (the new key's PEM block first, then the previous one's).
ALTER TABLE app_credentials ADD COLUMN previous_certificate_pem TEXT;
ALTER TABLE app_credentials ADD COLUMN previous_certificate_thumbprint TEXT;
