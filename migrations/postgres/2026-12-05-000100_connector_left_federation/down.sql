ALTER TABLE connectors DROP COLUMN left_federation_at;
