-- +goose Up
-- Written by the backend's /health probe (one row per host), never read by
-- the API: a successful write proves the database takes writes now.
CREATE TABLE health_probe (
    host      TEXT   PRIMARY KEY,
    probed_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE health_probe;
