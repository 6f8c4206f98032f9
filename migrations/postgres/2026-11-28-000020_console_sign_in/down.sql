DELETE FROM auth_sessions WHERE rp_id NOT IN (SELECT id FROM relying_parties);
ALTER TABLE auth_sessions ADD CONSTRAINT auth_sessions_rp_id_fkey
    FOREIGN KEY (rp_id) REFERENCES relying_parties(id) ON DELETE CASCADE;
