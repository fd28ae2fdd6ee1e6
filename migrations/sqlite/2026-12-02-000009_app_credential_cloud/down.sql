ALTER TABLE app_credentials DROP COLUMN cloud;
