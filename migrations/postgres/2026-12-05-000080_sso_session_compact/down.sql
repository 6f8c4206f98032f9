-- Session ids stay cut: the older version does not find those sessions, so people sign in
-- again.
DROP INDEX sso_sessions_ended;
