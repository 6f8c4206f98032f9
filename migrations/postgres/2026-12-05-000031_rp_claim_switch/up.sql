-- The self-service claim of legacy accounts (/claim/{rp}) is optional per relying party:
-- off until the operator turns it on.
ALTER TABLE relying_parties ADD COLUMN claim_enabled BOOLEAN NOT NULL DEFAULT FALSE;
