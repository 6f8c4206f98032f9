DROP INDEX connectors_chooser;
DROP INDEX connectors_federation;
DROP INDEX connectors_entity_id;
ALTER TABLE connectors DROP COLUMN federation;
ALTER TABLE connectors DROP COLUMN search_name;
ALTER TABLE connectors DROP COLUMN entity_id;
