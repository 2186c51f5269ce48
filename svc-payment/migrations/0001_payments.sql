-- svc-payment's own tables; the plumbing tables (outbox, processed, dead_letter) come first.

-- One row per charged order: the gateway's verdict and what payment.completed forwards.
-- `order_id` is UNIQUE because an order is charged at most once, however often its stock.reserved
-- is redelivered or re-published; the saga checks first, the index is the last word.
-- CANCELLED and `cancelled_at` are set by the refund endpoint (POST /payments/{id}/cancel): a cancelled payment
-- keeps its row, so a second cancel or a late stock.reserved still finds it.
CREATE TABLE payments (
    id             TEXT    NOT NULL PRIMARY KEY,  -- UUIDv7
    order_id       TEXT    NOT NULL UNIQUE,
    user_id        TEXT    NOT NULL,              -- the payer
    amount         INTEGER NOT NULL CHECK (amount > 0),  -- won
    method         TEXT    NOT NULL CHECK (method IN ('CARD', 'BANK_TRANSFER')),
    status         TEXT    NOT NULL CHECK (status IN ('COMPLETED', 'FAILED', 'CANCELLED')),
    decline_reason TEXT             CHECK (decline_reason IN ('LIMIT_EXCEEDED', 'DECLINED')),
    seller_id      TEXT    NOT NULL,
    category       TEXT    NOT NULL,
    product_id     TEXT    NOT NULL,
    quantity       INTEGER NOT NULL CHECK (quantity > 0),
    created_at     INTEGER NOT NULL,              -- unix milliseconds
    updated_at     INTEGER NOT NULL,              -- unix milliseconds
    cancelled_at   INTEGER,                       -- unix milliseconds, set only with CANCELLED
    -- Only a declined payment has a reason, and only a cancelled one a cancellation time.
    CHECK ((status = 'FAILED') = (decline_reason IS NOT NULL)),
    CHECK ((status = 'CANCELLED') = (cancelled_at IS NOT NULL))
) STRICT;
