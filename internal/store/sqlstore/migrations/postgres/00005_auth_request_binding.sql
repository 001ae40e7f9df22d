-- +goose Up
-- Cryptographic binding of approvals: the X25519 key the opener wants its
-- session sealed to (NULL when it sent none) and the backend's Ed25519
-- signature over the approval (NULL until approved).
ALTER TABLE auth_requests ADD COLUMN box_pubkey BYTEA;
ALTER TABLE auth_requests ADD COLUMN signature BYTEA;

-- +goose Down
ALTER TABLE auth_requests DROP COLUMN signature;
ALTER TABLE auth_requests DROP COLUMN box_pubkey;
