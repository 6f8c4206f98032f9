-- The unit's code with the level-1 segment first ("000.00.01.H49" -> "H49.01.00.000"), so an
-- agency subtree is one index range: a scope's members are the paths starting with its
-- fixed levels.
ALTER TABLE memberships ADD COLUMN unit_path TEXT;
UPDATE memberships SET unit_path = substr(unit_agency_code, 11, 3) || '.' || substr(unit_agency_code, 8, 2) || '.' || substr(unit_agency_code, 5, 2) || '.' || substr(unit_agency_code, 1, 3)
  WHERE unit_agency_code IS NOT NULL;
CREATE INDEX memberships_rp_unit_path ON memberships (rp_id, unit_path);
