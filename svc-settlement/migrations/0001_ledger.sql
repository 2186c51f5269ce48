-- svc-settlement's own tables; the plumbing tables (outbox, processed, dead_letter) come first.

-- Settings a ledger is kept by and must not silently change: `time_zone`, pinned at first start
-- (business dates already booked would mean something else in another zone).
CREATE TABLE ledger_settings (
    name  TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) STRICT, WITHOUT ROWID;

-- The sales ledger: one row per payment event, never updated or deleted (triggers below).
-- Figures are sums over it, so there is no running total that could drift from the entries.
-- UNIQUE (payment_id, kind): a payment is booked at most once as a SALE and once as a REFUND,
-- whatever is re-published under new event ids; the saga checks first, the index is the last word.
CREATE TABLE ledger (
    id            TEXT    NOT NULL PRIMARY KEY,                  -- the payment event's id
    kind          TEXT    NOT NULL CHECK (kind IN ('SALE', 'REFUND')),
    payment_id    TEXT    NOT NULL,
    order_id      TEXT    NOT NULL,
    seller_id     TEXT    NOT NULL,
    category      TEXT    NOT NULL CHECK (category <> ''),
    amount        INTEGER NOT NULL CHECK (amount > 0),           -- won; a refund is positive too
    occurred_at   TEXT    NOT NULL,                              -- the envelope's occurredAt, RFC 3339 UTC
    event_date    TEXT    NOT NULL,                              -- local date of occurred_at (YYYY-MM-DD)
    business_date TEXT    NOT NULL,                              -- the day it is booked on
    created_at    INTEGER NOT NULL,                              -- unix milliseconds
    UNIQUE (payment_id, kind),
    -- Booked on its own day, or later when that day was already closed (an adjustment).
    CHECK (business_date >= event_date)
) STRICT;
CREATE INDEX ledger_by_day ON ledger (business_date, seller_id, category);

-- Closed business days. `fee_rate_bps` is the rate the day was settled at, so its report never
-- changes even if FEE_RATE_BPS does later. `ledger_entries` is the close's position in the
-- ledger: how many entries (all days) were booked when it committed; its event carries it, so a
-- rebuild from the stream closes the day at the same point.
CREATE TABLE closed_days (
    date           TEXT    NOT NULL PRIMARY KEY,                 -- YYYY-MM-DD
    time_zone      TEXT    NOT NULL,                             -- IANA name
    fee_rate_bps   INTEGER NOT NULL CHECK (fee_rate_bps BETWEEN 0 AND 10000),
    closed_at      TEXT    NOT NULL,                             -- RFC 3339 UTC, by the service's clock
    event_id       TEXT    NOT NULL UNIQUE,                      -- the settlement.closed event
    ledger_entries INTEGER NOT NULL CHECK (ledger_entries >= 0)  -- count(*) FROM ledger at the close
) STRICT, WITHOUT ROWID;

-- What each seller is paid for a closed day: the payouts of its settlement.closed event.
CREATE TABLE payouts (
    date      TEXT    NOT NULL REFERENCES closed_days (date),
    seller_id TEXT    NOT NULL,
    gross     INTEGER NOT NULL CHECK (gross >= 0),
    refunds   INTEGER NOT NULL CHECK (refunds >= 0),
    net       INTEGER NOT NULL,
    fee       INTEGER NOT NULL CHECK (fee >= 0),
    payout    INTEGER NOT NULL,
    orders    INTEGER NOT NULL CHECK (orders >= 0),
    PRIMARY KEY (date, seller_id),
    CHECK (net = gross - refunds),
    CHECK (fee + payout = net)
) STRICT, WITHOUT ROWID;

-- A closed day never changes, and the ledger only grows: enforced here too, not only in code.
CREATE TRIGGER ledger_never_books_on_a_closed_day BEFORE INSERT ON ledger
WHEN EXISTS (SELECT 1 FROM closed_days WHERE date = NEW.business_date)
BEGIN SELECT RAISE(ABORT, 'business day is closed'); END;
CREATE TRIGGER ledger_is_append_only_update BEFORE UPDATE ON ledger
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER ledger_is_append_only_delete BEFORE DELETE ON ledger
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER closed_days_are_final_update BEFORE UPDATE ON closed_days
BEGIN SELECT RAISE(ABORT, 'a closed day is final'); END;
CREATE TRIGGER closed_days_are_final_delete BEFORE DELETE ON closed_days
BEGIN SELECT RAISE(ABORT, 'a closed day is final'); END;
CREATE TRIGGER payouts_are_final_update BEFORE UPDATE ON payouts
BEGIN SELECT RAISE(ABORT, 'a closed day is final'); END;
CREATE TRIGGER payouts_are_final_delete BEFORE DELETE ON payouts
BEGIN SELECT RAISE(ABORT, 'a closed day is final'); END;
