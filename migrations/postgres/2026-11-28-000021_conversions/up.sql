-- Every account conversion (legacy -> federated, or hand-over between federated accounts):
-- what the relying party must re-key (old subject -> new subject) and the report of what
-- moved, retrievable later and served as the conversion feed.
CREATE TABLE conversions (
    id             TEXT PRIMARY KEY NOT NULL,
    seq            BIGINT NOT NULL UNIQUE,               -- feed order (since=)
    rp_id          TEXT NOT NULL REFERENCES relying_parties(id) ON DELETE CASCADE,
    mode           TEXT NOT NULL CHECK (mode IN ('legacy', 'handover')),
    source         TEXT NOT NULL,                        -- legacy account id, or the old account id
    target_account TEXT NOT NULL REFERENCES accounts(id),
    old_subject    TEXT NOT NULL,
    new_subject    TEXT NOT NULL,
    report         TEXT NOT NULL,                        -- JSON
    actor          TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE INDEX conversions_rp_seq ON conversions(rp_id, seq);
