DROP TABLE bridge_logins;
