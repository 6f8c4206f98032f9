DROP TABLE logout_sessions;
