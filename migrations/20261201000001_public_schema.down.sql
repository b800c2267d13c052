-- Drops the AutoBot tables only if this server created them; an adopted database keeps them.
DO $$
BEGIN
IF (SELECT created_public_tables FROM slm_server.schema_origin LIMIT 1) THEN
    DROP TABLE public.audit_logs;
    DROP TABLE public.user_mfa;
    DROP TABLE public.user_sso_links;
    DROP TABLE public.sso_providers;
    DROP TABLE public.api_keys;
    DROP TABLE public.user_roles;
    DROP TABLE public.role_permissions;
    DROP TABLE public.roles;
    DROP TABLE public.permissions;
    DROP TABLE public.team_memberships;
    DROP TABLE public.teams;
    DROP TABLE public.users;
    DROP TABLE public.organizations;
END IF;
END
$$;
DROP TABLE slm_server.schema_origin;
