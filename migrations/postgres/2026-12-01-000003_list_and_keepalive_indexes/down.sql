DROP INDEX mailboxes_keepalive;
DROP INDEX mailboxes_org_id;
