DROP INDEX memberships_rp_unit_path;
ALTER TABLE memberships DROP COLUMN unit_path;
