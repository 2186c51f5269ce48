-- svc-product's own tables; the plumbing tables (outbox, processed, dead_letter) come first.

-- The catalogue. `stock` is what can still be reserved: reservations take from it and releases
-- give back. The CHECK is the last guard against overselling, behind the conditional UPDATE.
CREATE TABLE products (
    id         TEXT    NOT NULL PRIMARY KEY,   -- UUIDv7
    seller_id  TEXT    NOT NULL,               -- the user who listed it (svc-user's id)
    name       TEXT    NOT NULL,
    category   TEXT    NOT NULL,               -- a slug: [a-z0-9-]{1,50}
    price      INTEGER NOT NULL CHECK (price >= 1),   -- whole won
    stock      INTEGER NOT NULL CHECK (stock >= 0),
    created_at INTEGER NOT NULL,               -- unix milliseconds
    updated_at INTEGER NOT NULL                -- unix milliseconds
) STRICT;
-- The listing is newest first, optionally filtered by category or seller.
CREATE INDEX products_newest ON products (created_at DESC, id DESC);
CREATE INDEX products_category ON products (category, created_at DESC, id DESC);
CREATE INDEX products_seller ON products (seller_id, created_at DESC, id DESC);

-- One row per order that asked for stock, whatever the answer: the order id as primary key is
-- what makes a reservation happen at most once per order, even when `order.created` arrives again
-- under a new event id. A release flips RESERVED to RELEASED exactly once. No foreign key to
-- products: an order may name a product that does not exist (status REJECTED).
CREATE TABLE reservations (
    order_id   TEXT    NOT NULL PRIMARY KEY,
    product_id TEXT    NOT NULL,
    quantity   INTEGER NOT NULL CHECK (quantity >= 1),
    unit_price INTEGER,                        -- won; NULL when rejected
    amount     INTEGER,                        -- unit_price * quantity; NULL when rejected
    status     TEXT    NOT NULL CHECK (status IN ('RESERVED', 'RELEASED', 'REJECTED')),
    reason     TEXT,                           -- why it was rejected or released
    created_at INTEGER NOT NULL,               -- unix milliseconds
    updated_at INTEGER NOT NULL,               -- unix milliseconds
    CHECK ((status = 'REJECTED') = (unit_price IS NULL))
) STRICT;
