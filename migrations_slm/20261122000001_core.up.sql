-- Core identity schema of a realm. The same tables exist in both realms' databases; in
-- autobot_users the tables users, roles, user_roles, teams and team_members are a public
-- contract read by the AutoBot backend (README.md, "For the AutoBot backend team").

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE users (
    id                        uuid PRIMARY KEY,
    username                  text NOT NULL,
    email                     text,
    full_name                 text,
    -- Argon2id PHC string ($argon2id$v=19$m=19456,t=2,p=1$...), or an imported bcrypt hash
    -- that is upgraded on the next successful login.
    password_hash             text NOT NULL,
    is_active                 boolean NOT NULL DEFAULT true,
    must_change_password      boolean NOT NULL DEFAULT false,
    mfa_enabled               boolean NOT NULL DEFAULT false,
    -- AES-256-GCM(nonce || ciphertext) of the TOTP secret; never stored in clear.
    mfa_secret_encrypted      bytea,
    mfa_pending_secret_encrypted bytea,
    -- Last TOTP time step accepted, so a code cannot be replayed within its step.
    mfa_last_step             bigint,
    failed_login_count        integer NOT NULL DEFAULT 0,
    failed_login_window_start timestamptz,
    locked_until              timestamptz,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    last_login_at             timestamptz,
    password_changed_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_username_format CHECK (username ~ '^[A-Za-z0-9._-]{3,64}$')
);

-- Case-insensitive uniqueness is decided by the database so that concurrent creates cannot race.
CREATE UNIQUE INDEX users_username_key ON users (lower(username));
CREATE UNIQUE INDEX users_email_key ON users (lower(email)) WHERE email IS NOT NULL;
-- Stable list order (created_at, id) and substring search at 1,000,000 users.
CREATE INDEX users_created_at_id_idx ON users (created_at, id);
CREATE INDEX users_username_trgm_idx ON users USING gin (username gin_trgm_ops);
CREATE INDEX users_email_trgm_idx ON users USING gin (email gin_trgm_ops);
CREATE INDEX users_full_name_trgm_idx ON users USING gin (full_name gin_trgm_ops);

CREATE TABLE roles (
    id          smallint PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    -- Position in the hierarchy: a higher rank includes every lower one.
    rank        smallint NOT NULL UNIQUE,
    description text NOT NULL DEFAULT ''
);

CREATE TABLE user_roles (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id    smallint NOT NULL REFERENCES roles (id),
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, role_id)
);
CREATE INDEX user_roles_role_id_idx ON user_roles (role_id);

-- One row per login. The access JWT names its session; ending the session ends the token.
CREATE TABLE sessions (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    revoke_reason text,
    ip           text,
    user_agent   text
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id) WHERE revoked_at IS NULL;

-- Refresh tokens are opaque random strings stored only as SHA-256 hashes. A used token stays
-- (with used_at set) until its session ends, so that its reuse is recognised.
CREATE TABLE refresh_tokens (
    token_hash  bytea PRIMARY KEY,
    session_id  uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL,
    -- The first characters of the key, shown in lists so that a key can be recognised.
    prefix       text NOT NULL,
    -- HMAC-SHA256 of the whole key under a server secret.
    key_hash     bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_keys_user_id_idx ON api_keys (user_id);

CREATE TABLE recovery_codes (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  bytea NOT NULL,
    used_at    timestamptz,
    PRIMARY KEY (user_id, code_hash)
);

-- Append-only audit log: the trigger below refuses UPDATE and DELETE.
CREATE TABLE audit_log (
    id             uuid PRIMARY KEY,
    occurred_at    timestamptz NOT NULL DEFAULT now(),
    realm          text NOT NULL,
    event_type     text NOT NULL,
    actor_id       uuid,
    actor_username text,
    target_id      uuid,
    ip             text,
    user_agent     text,
    detail         jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_occurred_at_idx ON audit_log (occurred_at DESC, id DESC);
CREATE INDEX audit_log_event_type_idx ON audit_log (event_type, occurred_at DESC);
CREATE INDEX audit_log_actor_id_idx ON audit_log (actor_id, occurred_at DESC);
CREATE INDEX audit_log_target_id_idx ON audit_log (target_id, occurred_at DESC);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
