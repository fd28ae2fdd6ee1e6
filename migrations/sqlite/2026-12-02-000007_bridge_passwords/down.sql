DROP INDEX mailboxes_email;
DROP TABLE bridge_passwords;
