-- Orders whose saga ended without them being paid (`order.failed`, `order.expired`). A charge
-- for one is refunded when the order closes; a `stock.reserved` that arrives after it closed is
-- never charged.
CREATE TABLE closed_orders (
    order_id  TEXT    NOT NULL PRIMARY KEY,
    reason    TEXT    NOT NULL,                -- the event that closed it: order.failed or order.expired
    closed_at INTEGER NOT NULL                 -- unix milliseconds
) STRICT;
