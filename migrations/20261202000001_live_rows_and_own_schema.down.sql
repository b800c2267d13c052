-- Back to 0.2: a statement-level trigger refusing every change, pg_trgm in public, and the
-- unique indexes over every row (which fails if deleted rows now share a name with live ones).
DROP TRIGGER IF EXISTS slm_server_audit_logs_no_truncate ON public.audit_logs;
DROP TRIGGER IF EXISTS slm_server_audit_logs_append_only ON public.audit_logs;
DROP FUNCTION IF EXISTS slm_server.audit_logs_append_only();
CREATE FUNCTION slm_server.audit_logs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_logs is append-only';
END;
$$;
CREATE TRIGGER slm_server_audit_logs_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON public.audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION slm_server.audit_logs_append_only();

ALTER EXTENSION pg_trgm SET SCHEMA public;

DROP INDEX IF EXISTS public.users_username_lower_key;
DROP INDEX IF EXISTS public.users_email_lower_key;
DROP INDEX IF EXISTS public.teams_org_name_lower_key;
CREATE UNIQUE INDEX users_username_lower_key ON public.users (lower(username));
CREATE UNIQUE INDEX users_email_lower_key ON public.users (lower(email));
CREATE UNIQUE INDEX teams_org_name_lower_key ON public.teams (org_id, lower(name));
