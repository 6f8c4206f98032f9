ALTER TABLE api_tokens DROP COLUMN account_id;
