-- A sign-in to the admin console is an auth session too, for the relying party
-- 'fedhub-console' which is not a registered relying party: auth_sessions.rp_id no longer
-- references relying_parties.
ALTER TABLE auth_sessions DROP CONSTRAINT IF EXISTS auth_sessions_rp_id_fkey;
