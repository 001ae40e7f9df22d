-- +goose Up
-- The client address of the request that caused each audit row (resolved
-- through the configured trusted proxies); empty for rows from before.
ALTER TABLE audit_log ADD COLUMN client_ip TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE audit_log DROP COLUMN client_ip;
