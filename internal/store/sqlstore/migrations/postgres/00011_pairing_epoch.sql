-- +goose Up
-- The pairing epoch: one row whose counter goes up in the same transaction
-- as every decision an opener waits for (an auth request approved, denied
-- or locked; a rendezvous payload delivered). Replicas holding long polls
-- read it a few times a second, instead of every waiter reading its own
-- request, to learn that a decision was made elsewhere.

CREATE TABLE pairing_epoch (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch BIGINT  NOT NULL
);
INSERT INTO pairing_epoch (id, epoch) VALUES (1, 0);

-- +goose Down
DROP TABLE pairing_epoch;
