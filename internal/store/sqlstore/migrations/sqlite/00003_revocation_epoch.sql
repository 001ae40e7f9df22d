-- +goose Up
-- The revocation epoch: one row whose counter goes up in the same
-- transaction as every change that takes access away (a session revoked, a
-- wallet torn down, a scope changed). Relying services (the broker, the
-- daemons) compare it with the epoch at which they last validated a
-- session to know whether a cached validation may still be used.

CREATE TABLE revocation_epoch (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch BIGINT  NOT NULL
);
INSERT INTO revocation_epoch (id, epoch) VALUES (1, 0);

-- +goose Down
DROP TABLE revocation_epoch;
