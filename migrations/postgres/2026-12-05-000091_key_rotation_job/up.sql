-- Scheduled key rotation (keys.rotate_every) runs on one node at a time under this lease.
INSERT INTO job_leases (name, holder, until, runs) VALUES ('key_rotation', '', 0, 0);
