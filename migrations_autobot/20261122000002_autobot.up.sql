-- AutoBot realm: roles admin ⊃ manager ⊃ user, teams, access requests and the
-- cache-invalidation outbox.
INSERT INTO roles (id, name, rank, description) VALUES
    (1, 'user', 1, 'Uses AutoBot chat and tools'),
    (2, 'manager', 2, 'Manages AutoBot teams'),
    (3, 'admin', 3, 'Administers AutoBot');

CREATE TABLE teams (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    description text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX teams_name_key ON teams (lower(name));
CREATE INDEX teams_created_at_id_idx ON teams (created_at, id);
CREATE INDEX teams_name_trgm_idx ON teams USING gin (name gin_trgm_ops);

CREATE TABLE team_members (
    team_id   uuid NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    user_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role      text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'member')),
    joined_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user_id_idx ON team_members (user_id);

CREATE TABLE access_requests (
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
    user_id           uuid REFERENCES users (id) ON DELETE SET NULL,
    ip                text
);
CREATE UNIQUE INDEX access_requests_pending_email_key
    ON access_requests (lower(email)) WHERE status = 'pending';
CREATE INDEX access_requests_created_at_idx ON access_requests (created_at, id);

-- Transactional outbox: a row is written in the same transaction as the change it announces
-- and relayed to Redis pub/sub afterwards (at least once, in id order), then deleted.
CREATE TABLE outbox (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payload     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
