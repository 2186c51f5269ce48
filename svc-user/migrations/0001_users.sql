-- svc-user's own tables; the plumbing tables (outbox, processed, dead_letter) come first.

-- Accounts. `email` is stored normalised (trimmed, lowercased), so the unique index is what makes
-- addresses unique case-insensitively, decided inside the inserting transaction.
CREATE TABLE users (
    id            TEXT    NOT NULL PRIMARY KEY,  -- UUIDv7
    email         TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('CUSTOMER', 'SELLER', 'ADMIN')),
    password_hash TEXT    NOT NULL,              -- Argon2id PHC string, never leaves this table
    created_at    INTEGER NOT NULL               -- unix milliseconds
) STRICT;
CREATE UNIQUE INDEX users_email ON users (email);

-- The Ed25519 keys svc-user signs access tokens with, newest last. Only the public halves leave
-- this file (as JWKs in the auth-keys bucket); keeping the private half here is what lets tokens
-- issued before a restart stay valid after it. A key is retired when an operator deletes it from
-- the bucket: it is never published or signed with again, and the row stays as a record.
CREATE TABLE signing_keys (
    kid        TEXT    NOT NULL PRIMARY KEY,
    pkcs8_der  BLOB    NOT NULL,
    created_at INTEGER NOT NULL,                 -- unix milliseconds
    retired_at INTEGER                           -- unix milliseconds; NULL while in use
) STRICT;
