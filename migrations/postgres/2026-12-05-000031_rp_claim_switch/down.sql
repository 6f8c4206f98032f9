ALTER TABLE relying_parties DROP COLUMN claim_enabled;
