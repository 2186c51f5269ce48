-- The saga deadline: every order gets `deadline_at`, and one still PENDING or STOCK_RESERVED by
-- then becomes EXPIRED (announced by `order.expired`). SQLite cannot change a CHECK in place, so
-- the table is rebuilt. Orders placed before this migration get the default deadline of 600 s.
CREATE TABLE orders_with_deadline (
    id              TEXT    NOT NULL PRIMARY KEY,
    user_id         TEXT    NOT NULL,
    product_id      TEXT    NOT NULL,
    quantity        INTEGER NOT NULL CHECK (quantity >= 1),
    payment_method  TEXT    NOT NULL CHECK (payment_method IN ('CARD', 'BANK_TRANSFER')),
    status          TEXT    NOT NULL
                    CHECK (status IN ('PENDING', 'STOCK_RESERVED', 'PAID', 'FAILED', 'CANCELLED', 'EXPIRED')),
    failure_reason  TEXT    CHECK (failure_reason IN ('OUT_OF_STOCK', 'PRODUCT_NOT_FOUND', 'PAYMENT_DECLINED')),
    failure_detail  TEXT,
    unit_price      INTEGER,
    amount          INTEGER,
    payment_id      TEXT,
    idempotency_key TEXT,
    created_at      INTEGER NOT NULL,              -- unix milliseconds
    updated_at      INTEGER NOT NULL,              -- unix milliseconds
    deadline_at     INTEGER NOT NULL,              -- unix milliseconds: created_at + ORDER_DEADLINE_SECS
    UNIQUE (user_id, idempotency_key)
) STRICT;
INSERT INTO orders_with_deadline
    SELECT id, user_id, product_id, quantity, payment_method, status, failure_reason, failure_detail, unit_price,
           amount, payment_id, idempotency_key, created_at, updated_at, created_at + 600000
    FROM orders;
DROP TABLE orders;
ALTER TABLE orders_with_deadline RENAME TO orders;
CREATE INDEX orders_by_user ON orders (user_id, created_at DESC, id DESC);
-- The expiry's scan: only orders whose saga still runs.
CREATE INDEX orders_due ON orders (deadline_at) WHERE status IN ('PENDING', 'STOCK_RESERVED');
-- The trace's hourly purge (see `housekeeping`) looks events up by age.
CREATE INDEX saga_events_by_time ON saga_events (occurred_at);
