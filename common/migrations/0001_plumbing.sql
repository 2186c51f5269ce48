-- Tables every service has: the outbox it publishes from, the message ids its consumer has
-- processed, and the messages it refused.

-- Events waiting to be (or already) published. `seq` gives the publish order; published rows are
-- kept for a retention period so they can be re-published (`shopctl outbox republish`).
CREATE TABLE outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT    NOT NULL UNIQUE,      -- event id = Nats-Msg-Id
    subject      TEXT    NOT NULL,
    payload      BLOB    NOT NULL,             -- the envelope as JSON
    created_at   INTEGER NOT NULL,             -- unix milliseconds
    published_at INTEGER                       -- NULL until JetStream acked it
) STRICT;
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;

-- Message ids a consumer has applied. The insert shares the transaction of the effect, so a
-- redelivered or re-published message finds its id here and changes nothing.
CREATE TABLE processed (
    consumer     TEXT    NOT NULL,
    message_id   TEXT    NOT NULL,
    processed_at INTEGER NOT NULL,
    PRIMARY KEY (consumer, message_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX processed_at ON processed (processed_at);

-- Messages a consumer refused: undecodable, invalid, or still failing after max_deliver attempts.
CREATE TABLE dead_letter (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    consumer     TEXT    NOT NULL,
    subject      TEXT    NOT NULL,
    message_id   TEXT,                         -- Nats-Msg-Id header, when there was one
    stream_seq   INTEGER NOT NULL,
    deliveries   INTEGER NOT NULL,
    reason       TEXT    NOT NULL,
    payload      BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    replayed_at  INTEGER                       -- set by `shopctl dead-letter replay`
) STRICT;
