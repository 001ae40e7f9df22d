-- +goose Up
-- Agent names: what a master calls each wallet of its tree. A name is
-- unique within one master's tree (root), a wallet has at most one name,
-- and names of different masters never meet. Teardown deletes the row,
-- so the name can be given again.
CREATE TABLE agent_names (
    root       TEXT   NOT NULL REFERENCES wallets (address),
    name       TEXT   NOT NULL,
    wallet     TEXT   NOT NULL UNIQUE REFERENCES wallets (address),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (root, name)
);

-- +goose Down
DROP TABLE agent_names;
