-- The saga console's live feed: the most recently updated orders first, without a scan.
CREATE INDEX orders_by_update ON orders (updated_at DESC);
