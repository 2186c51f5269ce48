-- svc-order's own tables; the plumbing tables (outbox, processed, dead_letter) come first.

-- Orders and where their saga stands. The saga's consumer moves `status` along
-- PENDING -> STOCK_RESERVED -> PAID (-> CANCELLED), or to FAILED with a reason.
CREATE TABLE orders (
    id              TEXT    NOT NULL PRIMARY KEY,  -- UUIDv7 (any UUID for hand-published orders)
    user_id         TEXT    NOT NULL,
    product_id      TEXT    NOT NULL,
    quantity        INTEGER NOT NULL CHECK (quantity >= 1),  -- POST /orders allows 1..100; order.created any
    payment_method  TEXT    NOT NULL CHECK (payment_method IN ('CARD', 'BANK_TRANSFER')),
    status          TEXT    NOT NULL CHECK (status IN ('PENDING', 'STOCK_RESERVED', 'PAID', 'FAILED', 'CANCELLED')),
    failure_reason  TEXT    CHECK (failure_reason IN ('OUT_OF_STOCK', 'PRODUCT_NOT_FOUND', 'PAYMENT_DECLINED')),
    failure_detail  TEXT,
    unit_price      INTEGER,                       -- won, set when stock is reserved
    amount          INTEGER,                       -- won, set when stock is reserved
    payment_id      TEXT,                          -- set when paid
    -- The client's Idempotency-Key, if it sent one. NULLs never collide in a UNIQUE constraint,
    -- so only keyed requests are constrained, and the constraint (not a prior SELECT) is what
    -- makes two concurrent retries create one order.
    idempotency_key TEXT,
    created_at      INTEGER NOT NULL,              -- unix milliseconds
    updated_at      INTEGER NOT NULL,              -- unix milliseconds
    UNIQUE (user_id, idempotency_key)
) STRICT;
-- GET /orders/me: a user's orders, newest first.
CREATE INDEX orders_by_user ON orders (user_id, created_at DESC, id DESC);

-- Every order, stock and payment event seen on the stream, whoever produced it: the raw material
-- of GET /orders/{id}/trace. Filled by the `svc-order-trace` consumer.
CREATE TABLE saga_events (
    event_id     TEXT    NOT NULL PRIMARY KEY,
    order_id     TEXT    NOT NULL,                 -- the envelope's correlationId
    subject      TEXT    NOT NULL,
    type         TEXT    NOT NULL,
    producer     TEXT    NOT NULL,
    causation_id TEXT,
    occurred_at  INTEGER NOT NULL,                 -- unix milliseconds
    payload      TEXT    NOT NULL                  -- the whole envelope as JSON
) STRICT;
CREATE INDEX saga_events_by_order ON saga_events (order_id);
