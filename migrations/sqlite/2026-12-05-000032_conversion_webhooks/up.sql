-- An optional webhook per relying party: after each conversion commits, the hub POSTs the
-- conversion feed entry, signed with HMAC-SHA256 under a per-RP secret (sealed with the
-- at-rest key: the hub must be able to sign with it again).
ALTER TABLE relying_parties ADD COLUMN webhook_url TEXT;
ALTER TABLE relying_parties ADD COLUMN webhook_secret_sealed TEXT;   -- base64

-- One delivery per conversion of a relying party with a webhook, written in the
-- conversion's own transaction (an outbox) and sent after the commit; failures are retried
-- with backoff a bounded number of times. The conversion feed stays the source of truth.
CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY NOT NULL,
    conversion_id   TEXT NOT NULL REFERENCES conversions(id) ON DELETE CASCADE,
    rp_id           TEXT NOT NULL REFERENCES relying_parties(id) ON DELETE CASCADE,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    last_attempt_at BIGINT,
    delivered_at    BIGINT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(status, next_attempt_at);
CREATE INDEX webhook_deliveries_rp ON webhook_deliveries(rp_id, created_at);
