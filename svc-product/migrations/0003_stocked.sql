-- `stocked`: every unit ever put on the shelf, the initial stock plus every restock (releases
-- only give back what a reservation took, so they do not count). Whatever the saga does,
-- `stocked = stock + Σ quantity of RESERVED reservations` holds per product: the audit's check.
ALTER TABLE products ADD COLUMN stocked INTEGER NOT NULL DEFAULT 0;
UPDATE products SET stocked = stock + coalesce(
    (SELECT sum(quantity) FROM reservations WHERE product_id = products.id AND status = 'RESERVED'), 0);
