-- Orders whose saga ended without them being paid (`order.failed`, `order.expired`), as svc-product
-- heard of them. An `order.created` that arrives after its order closed (a redelivery overtaken by
-- the expiry) reserves nothing: the stock of an order nobody will pay for stays on the shelf.
CREATE TABLE closed_orders (
    order_id  TEXT    NOT NULL PRIMARY KEY,
    reason    TEXT    NOT NULL,                -- ORDER_FAILED or ORDER_EXPIRED
    closed_at INTEGER NOT NULL                 -- unix milliseconds
) STRICT;
