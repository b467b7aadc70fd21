-- Versioned documents (carts, customers), every version of each, and
-- orders. Portable SQL: the same file runs on SQLite and PostgreSQL.

-- The current version of each document. `signature` is the app tier's
-- HMAC over kind, id, version and body: a row changed by anything else
-- no longer verifies.
CREATE TABLE documents (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    version BIGINT NOT NULL,
    body TEXT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);

-- Every version written, the current one included: the base of a
-- three-way merge. Compacted to the last versions of each document.
CREATE TABLE history (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    version BIGINT NOT NULL,
    body TEXT NOT NULL,
    signature TEXT NOT NULL,
    written_at_ms BIGINT NOT NULL,
    PRIMARY KEY (kind, id, version)
);

-- Checked-out carts, written in the same transaction that empties the cart.
CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    cart TEXT NOT NULL,
    cart_version BIGINT NOT NULL,
    body TEXT NOT NULL,
    signature TEXT NOT NULL,
    placed_at_ms BIGINT NOT NULL
);
