-- Which secrets key sealed this database's secrets: a known value encrypted with it, written
-- by the first process that used a key. A process given another key refuses to start instead
-- of storing values no replica can decrypt.
CREATE TABLE secrets_key_check (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    sealed     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
