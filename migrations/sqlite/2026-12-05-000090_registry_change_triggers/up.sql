-- Nodes cache relying parties, connectors and signing keys (broker/src/cache.rs) and drop
-- their copies when a change counter moves. The database moves the counter itself on every
-- change to those tables, so no write path (nor an operator's own SQL) can forget to.
INSERT INTO change_counters (name, version) VALUES
    ('relying_parties', 0), ('connectors', 0), ('signing_keys', 0)
    ON CONFLICT (name) DO NOTHING;

CREATE TRIGGER relying_parties_insert_moves_counter AFTER INSERT ON relying_parties
BEGIN
    UPDATE change_counters SET version = version + 1 WHERE name = 'relying_parties';
END;

CREATE TRIGGER relying_parties_update_moves_counter AFTER UPDATE ON relying_parties
BEGIN
    UPDATE change_counters SET version = version + 1 WHERE name = 'relying_parties';
END;

CREATE TRIGGER relying_parties_delete_moves_counter AFTER DELETE ON relying_parties
BEGIN
    UPDATE change_counters SET version = version + 1 WHERE name = 'relying_parties';
END;

CREATE TRIGGER connectors_insert_moves_counter AFTER INSERT ON connectors
BEGIN
    UPDATE change_counters SET version = version + 1 WHERE name = 'connectors';
END;

CREATE TRIGGER connectors_update_moves_counter AFTER UPDATE ON connectors
BEGIN
    UPDATE change_counters SET version = version + 1 WHERE name = 'connectors';
END;

CREATE TRIGGER connectors_delete_moves_counter AFTER DELETE ON connectors
BEGIN
    UPDATE change_counters SET version = version + 1 WHERE name = 'connectors';
END;

CREATE TRIGGER rp_connectors_insert_moves_counter AFTER INSERT ON rp_connectors
BEGIN
    UPDATE change_counters SET version = version + 1 WHERE name = 'connectors';
END;

CREATE TRIGGER rp_connectors_update_moves_counter AFTER UPDATE ON rp_connectors
BEGIN
    UPDATE change_counters SET version = version + 1 WHERE name = 'connectors';
END;

CREATE TRIGGER rp_connectors_delete_moves_counter AFTER DELETE ON rp_connectors
BEGIN
    UPDATE change_counters SET version = version + 1 WHERE name = 'connectors';
END;

CREATE TRIGGER signing_keys_insert_moves_counter AFTER INSERT ON signing_keys
BEGIN
    UPDATE change_counters SET version = version + 1 WHERE name = 'signing_keys';
END;

CREATE TRIGGER signing_keys_update_moves_counter AFTER UPDATE ON signing_keys
BEGIN
    UPDATE change_counters SET version = version + 1 WHERE name = 'signing_keys';
END;

CREATE TRIGGER signing_keys_delete_moves_counter AFTER DELETE ON signing_keys
BEGIN
    UPDATE change_counters SET version = version + 1 WHERE name = 'signing_keys';
END;
