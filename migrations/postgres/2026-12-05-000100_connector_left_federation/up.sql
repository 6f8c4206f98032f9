-- When an aggregate import disabled a federation's IdP because the aggregate no longer
-- lists it (NULL: enabled, or disabled by an operator). Only these come back by themselves
-- when the IdP is listed again; an IdP an operator disabled stays disabled.
ALTER TABLE connectors ADD COLUMN left_federation_at BIGINT;
-- Federation IdPs disabled before this column existed were re-enabled by the next import
-- whoever disabled them; keep that for them.
UPDATE connectors SET left_federation_at = updated_at
  WHERE federation IS NOT NULL AND enabled = false;
