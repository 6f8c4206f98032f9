-- Nodes cache relying parties, connectors and signing keys (broker/src/cache.rs) and drop
-- their copies when a change counter moves. The database moves the counter itself on every
-- change to those tables, so no write path (nor an operator's own SQL) can forget to.
INSERT INTO change_counters (name, version) VALUES
    ('relying_parties', 0), ('connectors', 0), ('signing_keys', 0)
    ON CONFLICT (name) DO NOTHING;

CREATE FUNCTION fedhub_move_change_counter() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE change_counters SET version = version + 1 WHERE name = TG_ARGV[0];
    RETURN NULL;
END;
$$;

CREATE TRIGGER relying_parties_moves_counter AFTER INSERT OR UPDATE OR DELETE ON relying_parties
    FOR EACH STATEMENT EXECUTE FUNCTION fedhub_move_change_counter('relying_parties');

CREATE TRIGGER connectors_moves_counter AFTER INSERT OR UPDATE OR DELETE ON connectors
    FOR EACH STATEMENT EXECUTE FUNCTION fedhub_move_change_counter('connectors');

CREATE TRIGGER rp_connectors_moves_counter AFTER INSERT OR UPDATE OR DELETE ON rp_connectors
    FOR EACH STATEMENT EXECUTE FUNCTION fedhub_move_change_counter('connectors');

CREATE TRIGGER signing_keys_moves_counter AFTER INSERT OR UPDATE OR DELETE ON signing_keys
    FOR EACH STATEMENT EXECUTE FUNCTION fedhub_move_change_counter('signing_keys');
