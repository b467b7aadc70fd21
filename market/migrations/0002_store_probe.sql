-- One row that `/_health?deep=true` rewrites and commits: a store that
-- answers reads but can't make a write durable (a full disk) is reported
-- unhealthy.
CREATE TABLE store_probe (
    id INTEGER PRIMARY KEY,
    checked_at_ms BIGINT NOT NULL
);
INSERT INTO store_probe (id, checked_at_ms) VALUES (1, 0);
