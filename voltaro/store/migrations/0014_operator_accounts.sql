-- Named operator accounts with a role, their dashboard sessions and API tokens, and the
-- audit log of what operators did. Secrets are never stored: a password as its scrypt hash,
-- a session id and an API token as the SHA-256 of a 256-bit random value (a slow hash adds
-- nothing against guessing one of 2^256, and each request would pay it).
CREATE TABLE operator_accounts (
    name text PRIMARY KEY,
    role text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    password_hash text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- account NULL: a session signed in with the bootstrap admin token.
CREATE TABLE operator_sessions (
    id_hash text PRIMARY KEY,
    account text REFERENCES operator_accounts (name) ON DELETE CASCADE ON UPDATE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX operator_sessions_account ON operator_sessions (account);

CREATE TABLE api_tokens (
    id bigserial PRIMARY KEY,
    account text NOT NULL REFERENCES operator_accounts (name) ON DELETE CASCADE ON UPDATE CASCADE,
    label text NOT NULL,
    token_hash text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz
);
CREATE INDEX api_tokens_account ON api_tokens (account);

CREATE TABLE audit_log (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL,
    role text NOT NULL,
    via text NOT NULL,
    action text NOT NULL,
    charge_point_id text,
    target text,
    request jsonb,
    status integer NOT NULL,
    outcome jsonb
);
CREATE INDEX audit_log_charge_point ON audit_log (charge_point_id, id);
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_at ON audit_log (at);
