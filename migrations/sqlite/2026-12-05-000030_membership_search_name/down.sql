DROP INDEX accounts_name_id;
CREATE INDEX accounts_name ON accounts(search_name);
DROP INDEX memberships_rp_status_name;
DROP INDEX memberships_rp_name;
DROP INDEX memberships_rp_unit_path;
CREATE INDEX memberships_rp_unit_path ON memberships (rp_id, unit_path);
ALTER TABLE memberships DROP COLUMN search_name;
