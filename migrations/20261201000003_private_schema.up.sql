-- Everything only this server needs, in its own schema, never in the AutoBot tables' way.

-- Password state the AutoBot model has no column for.
CREATE TABLE slm_server.password_state (
    user_id              uuid PRIMARY KEY REFERENCES public.users (id) ON DELETE CASCADE,
    must_change_password boolean NOT NULL DEFAULT false,
    changed_at           timestamptz NOT NULL DEFAULT now()
);

-- The last forced reset of the bootstrap admin's password (ADMIN_BOOTSTRAP_PASSWORD_FORCE),
-- by a fingerprint of the password it set, so that a setting left in place resets only once.
CREATE TABLE slm_server.bootstrap_state (
    singleton          boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    forced_fingerprint bytea NOT NULL,
    forced_at          timestamptz NOT NULL DEFAULT now()
);

-- Failed logins in the current window and the lockout they led to.
CREATE TABLE slm_server.login_failures (
    user_id      uuid PRIMARY KEY REFERENCES public.users (id) ON DELETE CASCADE,
    failures     integer NOT NULL DEFAULT 0,
    window_start timestamptz,
    locked_until timestamptz
);

-- One row per login. The access JWT names its session; ending the session ends the token.
CREATE TABLE slm_server.sessions (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    revoke_reason text,
    ip            text,
    user_agent    text
);
CREATE INDEX sessions_live_user_idx ON slm_server.sessions (user_id) WHERE revoked_at IS NULL;

-- Refresh tokens are opaque random strings stored as SHA-256 digests. A used token stays (with
-- used_at set) until its session ends, so that its reuse is recognised.
CREATE TABLE slm_server.refresh_tokens (
    token_hash bytea PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES slm_server.sessions (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX refresh_tokens_session_idx ON slm_server.refresh_tokens (session_id);

-- The second step of an MFA login: a short-lived, single-use token naming the user whose
-- password was right.
CREATE TABLE slm_server.mfa_challenges (
    token_hash bytea PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    attempts   integer NOT NULL DEFAULT 0,
    ip         text,
    user_agent text
);
CREATE INDEX mfa_challenges_user_idx ON slm_server.mfa_challenges (user_id);

-- An MFA enrolment between setup and its confirmation by a first code.
CREATE TABLE slm_server.mfa_pending (
    user_id                uuid PRIMARY KEY REFERENCES public.users (id) ON DELETE CASCADE,
    secret_encrypted       text NOT NULL,
    backup_codes_encrypted text NOT NULL,
    created_at             timestamptz NOT NULL DEFAULT now()
);

-- The last TOTP time step accepted per user: a code cannot be replayed within its step.
CREATE TABLE slm_server.mfa_replay (
    user_id   uuid PRIMARY KEY REFERENCES public.users (id) ON DELETE CASCADE,
    last_step bigint NOT NULL
);

-- Requests for an AutoBot account, reviewed by SLM managers.
CREATE TABLE slm_server.access_requests (
    id                uuid PRIMARY KEY,
    username          text NOT NULL,
    email             text NOT NULL,
    full_name         text,
    reason            text,
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'approved', 'denied')),
    created_at        timestamptz NOT NULL DEFAULT now(),
    reviewed_at       timestamptz,
    reviewer_id       uuid,
    reviewer_username text,
    comment           text,
    user_id           uuid REFERENCES public.users (id) ON DELETE SET NULL,
    ip                text
);
CREATE UNIQUE INDEX access_requests_pending_email_key
    ON slm_server.access_requests (lower(email)) WHERE status = 'pending';
CREATE INDEX access_requests_created_at_idx ON slm_server.access_requests (created_at, id);

-- Transactional outbox of cache invalidations: a row is written in the same transaction as
-- the change it announces and relayed to Redis afterwards (at least once, in id order).
CREATE TABLE slm_server.outbox (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    uuid NOT NULL,
    payload    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
