-- The gateway's ledger; the plumbing tables (outbox, processed, dead_letter) come first and stay
-- empty: the gateway publishes and consumes nothing.

-- One row per charge Idempotency-Key, whatever became of it. `key` is UNIQUE so that two calls
-- with one key, however concurrent, charge once: the insert is the test, not a prior SELECT.
-- A VOIDED row is a key a refund reached before any charge did: it holds no charge (no id, no
-- reference, amount or method), and a charge that comes later under the key is refused.
-- `seq` is the ledger's insertion order, the audit cursor of GET /v1/charges.
CREATE TABLE charges (
    seq          INTEGER PRIMARY KEY,
    key          TEXT    NOT NULL UNIQUE,
    id           TEXT             UNIQUE,          -- UUIDv7; NULL only when VOIDED
    reference    TEXT,                             -- the caller's order id
    amount       INTEGER          CHECK (amount > 0),  -- won
    method       TEXT             CHECK (method IN ('CARD', 'BANK_TRANSFER')),
    status       TEXT    NOT NULL CHECK (status IN ('SUCCEEDED', 'DECLINED', 'VOIDED')),
    decline_code TEXT             CHECK (decline_code IN ('LIMIT_EXCEEDED', 'DECLINED')),
    created_at   INTEGER NOT NULL,                 -- unix milliseconds
    CHECK ((status = 'VOIDED') = (id IS NULL)),
    CHECK ((status = 'VOIDED') = (reference IS NULL AND amount IS NULL AND method IS NULL)),
    CHECK ((status = 'DECLINED') = (decline_code IS NOT NULL))
) STRICT;

-- One row per refund Idempotency-Key. A refund that found nothing to give back (a declined
-- charge, or no charge at all) is kept too, so its key replays the same answer.
CREATE TABLE refunds (
    id         TEXT    NOT NULL PRIMARY KEY,       -- UUIDv7
    key        TEXT    NOT NULL UNIQUE,
    charge_key TEXT    NOT NULL REFERENCES charges (key),
    charge_id  TEXT,                               -- NULL when no charge existed
    amount     INTEGER NOT NULL CHECK (amount >= 0),  -- won
    status     TEXT    NOT NULL CHECK (status IN ('REFUNDED', 'NOTHING_TO_REFUND')),
    created_at INTEGER NOT NULL,                   -- unix milliseconds
    CHECK ((status = 'REFUNDED') = (amount > 0)),
    CHECK (status = 'NOTHING_TO_REFUND' OR charge_id IS NOT NULL)
) STRICT;

-- Each charge is refunded at most once: the schema's word, whatever the handler checked first.
CREATE UNIQUE INDEX refunds_one_per_charge ON refunds (charge_key) WHERE status = 'REFUNDED';
