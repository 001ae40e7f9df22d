-- +goose Up
-- Broker tokens: short-lived bearers derived from a session for one audience
-- (the broker). Only the token's SHA-256 is stored. A token dies with its
-- parent session: the backend checks the parent on every use, and deleting
-- the parent deletes its tokens.
CREATE TABLE broker_tokens (
    token_hash  TEXT    PRIMARY KEY,
    parent_hash TEXT    NOT NULL REFERENCES sessions (token_hash) ON DELETE CASCADE,
    audience    TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX broker_tokens_parent_hash ON broker_tokens (parent_hash);
CREATE INDEX broker_tokens_expires_at ON broker_tokens (expires_at);

-- +goose Down
DROP TABLE broker_tokens;
