DROP INDEX accounts_name_id;
DROP INDEX memberships_rp_status_name;
DROP INDEX memberships_rp_name;
DROP INDEX memberships_rp_unit_path;
ALTER TABLE accounts ALTER COLUMN search_name TYPE TEXT COLLATE "default";
ALTER TABLE memberships ALTER COLUMN unit_path TYPE TEXT COLLATE "default";
ALTER TABLE memberships DROP COLUMN search_name;
CREATE INDEX accounts_name ON accounts(search_name);
CREATE INDEX memberships_rp_unit_path ON memberships (rp_id, unit_path);
