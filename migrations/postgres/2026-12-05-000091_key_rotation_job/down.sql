DELETE FROM job_leases WHERE name = 'key_rotation';
