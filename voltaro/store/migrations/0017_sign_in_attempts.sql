-- Dashboard sign-ins with a password, counted per account and per client address, so that
-- every instance on this database slows a password guesser alike (voltaro/store/
-- sign_in_attempts.py). A key is 'account:<name>' or 'address:<ip>'. attempts: sign-ins
-- begun since the count started, less those that succeeded; the key is blocked while
-- attempts reached its limit and last_at is less than the block's length ago. refused:
-- attempts refused during the current block (its first refusal is audited, not each one).
-- Rows whose block is over are deleted within a minute (voltaro/central/retention.py).
CREATE TABLE sign_in_attempts (
    key text PRIMARY KEY,
    attempts integer NOT NULL,
    last_at timestamptz NOT NULL,
    refused integer NOT NULL DEFAULT 0
);
CREATE INDEX sign_in_attempts_last_at ON sign_in_attempts (last_at);
