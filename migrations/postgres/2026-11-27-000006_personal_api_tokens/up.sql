-- A personal API token acts as its account, with exactly that account's admin grants;
-- a token without an account is a federation-operator token.
ALTER TABLE api_tokens ADD COLUMN account_id TEXT REFERENCES accounts (id);
