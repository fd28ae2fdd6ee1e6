DROP TABLE mailboxes;
DROP TABLE app_credentials;
