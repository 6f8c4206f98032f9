-- The user-management list sorts and filters a relying party's members by name. With the name
-- copied onto the membership (accounts.search_name, accents folded), a page of one agency
-- subtree is read from an index in name order, without joining every member's account first.
ALTER TABLE memberships ADD COLUMN search_name TEXT NOT NULL DEFAULT '';
UPDATE memberships SET search_name = accounts.search_name
  FROM accounts WHERE accounts.id = memberships.account_id;
DROP INDEX memberships_rp_unit_path;
DROP INDEX accounts_name;
-- Byte order for the agency-subtree range ('.' before '/') and for name paging, whatever
-- collation the database was created with; the folded names are ASCII.
ALTER TABLE memberships ALTER COLUMN unit_path TYPE TEXT COLLATE "C";
ALTER TABLE memberships ALTER COLUMN search_name TYPE TEXT COLLATE "C";
ALTER TABLE accounts ALTER COLUMN search_name TYPE TEXT COLLATE "C";
-- A subtree's count, whatever the filters, and its page when the subtree is small: one range
-- of this index, never the table.
CREATE INDEX memberships_rp_unit_path ON memberships (rp_id, unit_path, status, search_name, id);
-- A large subtree's page: the relying party's members in name order, the first 20 that match.
CREATE INDEX memberships_rp_name ON memberships (rp_id, search_name, id, unit_path);
CREATE INDEX memberships_rp_status_name ON memberships (rp_id, status, search_name, id, unit_path);
-- Directory search by name tests the pattern on index entries and pages by (name, id).
CREATE INDEX accounts_name_id ON accounts (search_name, id);
