-- The Microsoft cloud of the app registration: `global`, `usgov`,
-- `usgov_dod` or `china` (domain::Cloud). Existing credentials are global.
ALTER TABLE app_credentials ADD COLUMN cloud TEXT NOT NULL DEFAULT 'global';
