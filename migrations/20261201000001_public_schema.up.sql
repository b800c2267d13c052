-- The AutoBot platform's user-management tables, exactly as the AutoBot backend's migration
-- `20251224_001_initial_user_management` and its SQLAlchemy models define them: names, types,
-- nullability, defaults (server-side only where that migration has them), unique constraints,
-- indexes and foreign keys. The AutoBot backend reads these tables directly.
--
-- A database the AutoBot backend already made is adopted: the server checks the columns it
-- needs before migrating (src/database/migrate.rs) and this migration creates nothing.
-- `slm_server.schema_origin` remembers which case it was, so that reverting never drops
-- tables the server did not create.

CREATE TABLE slm_server.schema_origin (
    created_public_tables boolean NOT NULL
);

DO $$
BEGIN
IF to_regclass('public.users') IS NOT NULL THEN
    INSERT INTO slm_server.schema_origin VALUES (false);
    RETURN;
END IF;
INSERT INTO slm_server.schema_origin VALUES (true);

CREATE TABLE public.organizations (
    id uuid NOT NULL,
    name varchar(255) NOT NULL,
    slug varchar(100) NOT NULL,
    description text,
    settings jsonb DEFAULT '{}' NOT NULL,
    subscription_tier varchar(50),
    max_users integer NOT NULL,
    is_active boolean NOT NULL,
    deleted_at timestamptz,
    created_at timestamptz DEFAULT now() NOT NULL,
    updated_at timestamptz DEFAULT now() NOT NULL,
    PRIMARY KEY (id)
);
CREATE UNIQUE INDEX ix_organizations_slug ON public.organizations (slug);

CREATE TABLE public.users (
    id uuid NOT NULL,
    org_id uuid,
    email varchar(255) NOT NULL,
    username varchar(100) NOT NULL,
    password_hash varchar(255),
    display_name varchar(255),
    avatar_url varchar(500),
    bio text,
    is_active boolean NOT NULL,
    is_verified boolean NOT NULL,
    mfa_enabled boolean NOT NULL,
    is_platform_admin boolean NOT NULL,
    preferences jsonb DEFAULT '{}' NOT NULL,
    last_login_at timestamptz,
    email_verified_at timestamptz,
    deleted_at timestamptz,
    created_at timestamptz DEFAULT now() NOT NULL,
    updated_at timestamptz DEFAULT now() NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY (org_id) REFERENCES public.organizations (id) ON DELETE CASCADE
);
CREATE INDEX ix_users_org_id ON public.users (org_id);
CREATE UNIQUE INDEX ix_users_email ON public.users (email);
CREATE UNIQUE INDEX ix_users_username ON public.users (username);

CREATE TABLE public.teams (
    id uuid NOT NULL,
    org_id uuid NOT NULL,
    name varchar(255) NOT NULL,
    description text,
    settings jsonb DEFAULT '{}' NOT NULL,
    is_default boolean NOT NULL,
    deleted_at timestamptz,
    created_at timestamptz DEFAULT now() NOT NULL,
    updated_at timestamptz DEFAULT now() NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY (org_id) REFERENCES public.organizations (id) ON DELETE CASCADE,
    CONSTRAINT uq_team_org_name UNIQUE (org_id, name)
);
CREATE INDEX ix_teams_org_id ON public.teams (org_id);

CREATE TABLE public.team_memberships (
    id uuid NOT NULL,
    team_id uuid NOT NULL,
    user_id uuid NOT NULL,
    role varchar(50) NOT NULL,
    joined_at timestamptz DEFAULT now() NOT NULL,
    created_at timestamptz DEFAULT now() NOT NULL,
    updated_at timestamptz DEFAULT now() NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY (team_id) REFERENCES public.teams (id) ON DELETE CASCADE,
    FOREIGN KEY (user_id) REFERENCES public.users (id) ON DELETE CASCADE,
    CONSTRAINT uq_team_user UNIQUE (team_id, user_id)
);
CREATE INDEX ix_team_memberships_team_id ON public.team_memberships (team_id);
CREATE INDEX ix_team_memberships_user_id ON public.team_memberships (user_id);

CREATE TABLE public.permissions (
    id uuid NOT NULL,
    name varchar(100) NOT NULL,
    description text,
    resource varchar(100) NOT NULL,
    action varchar(50) NOT NULL,
    created_at timestamptz DEFAULT now() NOT NULL,
    updated_at timestamptz DEFAULT now() NOT NULL,
    PRIMARY KEY (id)
);
CREATE UNIQUE INDEX ix_permissions_name ON public.permissions (name);
CREATE INDEX ix_permissions_resource ON public.permissions (resource);

CREATE TABLE public.roles (
    id uuid NOT NULL,
    org_id uuid,
    name varchar(100) NOT NULL,
    description text,
    is_system boolean NOT NULL,
    priority integer NOT NULL,
    created_at timestamptz DEFAULT now() NOT NULL,
    updated_at timestamptz DEFAULT now() NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY (org_id) REFERENCES public.organizations (id) ON DELETE CASCADE
);
CREATE INDEX ix_roles_org_id ON public.roles (org_id);

CREATE TABLE public.role_permissions (
    role_id uuid NOT NULL,
    permission_id uuid NOT NULL,
    PRIMARY KEY (role_id, permission_id),
    FOREIGN KEY (role_id) REFERENCES public.roles (id) ON DELETE CASCADE,
    FOREIGN KEY (permission_id) REFERENCES public.permissions (id) ON DELETE CASCADE
);

CREATE TABLE public.user_roles (
    user_id uuid NOT NULL,
    role_id uuid NOT NULL,
    assigned_by uuid,
    created_at timestamptz DEFAULT now() NOT NULL,
    updated_at timestamptz DEFAULT now() NOT NULL,
    PRIMARY KEY (user_id, role_id),
    FOREIGN KEY (user_id) REFERENCES public.users (id) ON DELETE CASCADE,
    FOREIGN KEY (role_id) REFERENCES public.roles (id) ON DELETE CASCADE,
    FOREIGN KEY (assigned_by) REFERENCES public.users (id) ON DELETE SET NULL
);

CREATE TABLE public.api_keys (
    id uuid NOT NULL,
    key_hash varchar(255) NOT NULL,
    key_prefix varchar(12) NOT NULL,
    user_id uuid NOT NULL,
    team_id uuid,
    name varchar(255) NOT NULL,
    description varchar(500),
    scopes jsonb DEFAULT '[]' NOT NULL,
    is_active boolean NOT NULL,
    expires_at timestamptz,
    last_used_at timestamptz,
    usage_count integer NOT NULL,
    revoked_at timestamptz,
    revoked_by uuid,
    created_at timestamptz DEFAULT now() NOT NULL,
    updated_at timestamptz DEFAULT now() NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY (user_id) REFERENCES public.users (id) ON DELETE CASCADE,
    FOREIGN KEY (team_id) REFERENCES public.teams (id) ON DELETE CASCADE,
    FOREIGN KEY (revoked_by) REFERENCES public.users (id) ON DELETE SET NULL
);
CREATE UNIQUE INDEX ix_api_keys_key_hash ON public.api_keys (key_hash);
CREATE INDEX ix_api_keys_key_prefix ON public.api_keys (key_prefix);
CREATE INDEX ix_api_keys_user_id ON public.api_keys (user_id);
CREATE INDEX ix_api_keys_team_id ON public.api_keys (team_id);

CREATE TABLE public.sso_providers (
    id uuid NOT NULL,
    org_id uuid,
    provider_type varchar(50) NOT NULL,
    name varchar(255) NOT NULL,
    config jsonb NOT NULL,
    is_active boolean NOT NULL,
    is_social boolean NOT NULL,
    allow_user_creation boolean NOT NULL,
    default_role varchar(100),
    group_mapping jsonb DEFAULT '{}' NOT NULL,
    last_sync_at timestamptz,
    created_at timestamptz DEFAULT now() NOT NULL,
    updated_at timestamptz DEFAULT now() NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY (org_id) REFERENCES public.organizations (id) ON DELETE CASCADE
);
CREATE INDEX ix_sso_providers_org_id ON public.sso_providers (org_id);
CREATE INDEX ix_sso_providers_provider_type ON public.sso_providers (provider_type);

CREATE TABLE public.user_sso_links (
    id uuid NOT NULL,
    user_id uuid NOT NULL,
    provider_id uuid NOT NULL,
    external_id varchar(255) NOT NULL,
    external_email varchar(255),
    metadata jsonb DEFAULT '{}' NOT NULL,
    last_login_at timestamptz,
    created_at timestamptz DEFAULT now() NOT NULL,
    updated_at timestamptz DEFAULT now() NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY (user_id) REFERENCES public.users (id) ON DELETE CASCADE,
    FOREIGN KEY (provider_id) REFERENCES public.sso_providers (id) ON DELETE CASCADE,
    CONSTRAINT uq_provider_external_id UNIQUE (provider_id, external_id)
);
CREATE INDEX ix_user_sso_links_user_id ON public.user_sso_links (user_id);
CREATE INDEX ix_user_sso_links_provider_id ON public.user_sso_links (provider_id);

CREATE TABLE public.user_mfa (
    id uuid NOT NULL,
    user_id uuid NOT NULL,
    method varchar(50) NOT NULL,
    secret_encrypted varchar(500) NOT NULL,
    backup_codes_encrypted varchar(2000),
    backup_codes_remaining integer NOT NULL,
    is_verified boolean NOT NULL,
    last_verified_at timestamptz,
    recovery_email varchar(255),
    created_at timestamptz DEFAULT now() NOT NULL,
    updated_at timestamptz DEFAULT now() NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY (user_id) REFERENCES public.users (id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX ix_user_mfa_user_id ON public.user_mfa (user_id);

CREATE TABLE public.audit_logs (
    id uuid NOT NULL,
    org_id uuid,
    user_id uuid,
    action varchar(100) NOT NULL,
    resource_type varchar(100) NOT NULL,
    resource_id uuid,
    outcome varchar(50) NOT NULL,
    details jsonb DEFAULT '{}' NOT NULL,
    ip_address varchar(45),
    user_agent varchar(500),
    created_at timestamptz DEFAULT now() NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY (org_id) REFERENCES public.organizations (id) ON DELETE SET NULL,
    FOREIGN KEY (user_id) REFERENCES public.users (id) ON DELETE SET NULL
);
CREATE INDEX ix_audit_logs_org_id ON public.audit_logs (org_id);
CREATE INDEX ix_audit_logs_user_id ON public.audit_logs (user_id);
CREATE INDEX ix_audit_logs_action ON public.audit_logs (action);
CREATE INDEX ix_audit_logs_resource_type ON public.audit_logs (resource_type);
CREATE INDEX ix_audit_logs_created_at ON public.audit_logs (created_at);
CREATE INDEX idx_audit_org_created ON public.audit_logs (org_id, created_at);
CREATE INDEX idx_audit_user_created ON public.audit_logs (user_id, created_at);
CREATE INDEX idx_audit_action_created ON public.audit_logs (action, created_at);
END
$$;
