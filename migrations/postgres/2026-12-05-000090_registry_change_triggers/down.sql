DROP TRIGGER IF EXISTS relying_parties_moves_counter ON relying_parties;
DROP TRIGGER IF EXISTS connectors_moves_counter ON connectors;
DROP TRIGGER IF EXISTS rp_connectors_moves_counter ON rp_connectors;
DROP TRIGGER IF EXISTS signing_keys_moves_counter ON signing_keys;
DROP FUNCTION IF EXISTS fedhub_move_change_counter();
