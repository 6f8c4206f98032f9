DROP TABLE webhook_deliveries;
ALTER TABLE relying_parties DROP COLUMN webhook_secret_sealed;
ALTER TABLE relying_parties DROP COLUMN webhook_url;
