-- A relying party's hint (SAML Scoping/IDPList ProviderID, OIDC idp_hint) names a connector by
-- its IdP's entity ID or issuer. Copied out of the settings JSON into an indexed column, the
-- connector it names is one index lookup, however many IdPs a federation's aggregate brought.
ALTER TABLE connectors ADD COLUMN entity_id TEXT;
-- What the sign-in page's search matches: the display name (lower case, accents folded), the
-- entity ID and the IdP's scopes (domains).
ALTER TABLE connectors ADD COLUMN search_name TEXT NOT NULL DEFAULT '';
-- The federation whose metadata aggregate registered the connector (NULL: registered alone).
-- A new import of that aggregate updates these and disables the ones no longer in it.
ALTER TABLE connectors ADD COLUMN federation TEXT;
UPDATE connectors SET entity_id = json_extract(config, '$.entity_id') WHERE kind = 'saml';
UPDATE connectors SET entity_id = json_extract(config, '$.issuer') WHERE kind = 'oidc';
UPDATE connectors SET search_name = lower(display_name) || ' ' || lower(COALESCE(entity_id, ''));
CREATE INDEX connectors_entity_id ON connectors (entity_id);
CREATE INDEX connectors_federation ON connectors (federation, entity_id);
-- The sign-in page: how many IdPs a relying party offers, and the first 20 whose name matches
-- a search, in name order, read from index entries (the settings stay in the table).
CREATE INDEX connectors_chooser ON connectors (kind, enabled, display_name, search_name, id);
