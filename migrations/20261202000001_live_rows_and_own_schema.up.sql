-- Contract version 3 (docs/api.md §6), for databases that ran 0.2's migrations:
-- 1. Case-insensitive uniqueness holds among live rows only: a deleted user's or team's name
--    (the AutoBot backend soft-deletes) is free again. (A database adopted from now on gets
--    these indexes before 0.2's migration runs: src/database/migrate.rs.)
-- 2. pg_trgm lives in the server's own schema, not among the AutoBot backend's objects.
-- 3. The audit trail stays append-only, but lets through the foreign keys' own
--    ON DELETE SET NULL, so that the backend's hard delete of a user or organization works.

DO $$
DECLARE
    wanted record;
BEGIN
    FOR wanted IN
        SELECT * FROM (VALUES
            ('users_username_lower_key',
             'CREATE UNIQUE INDEX users_username_lower_key ON public.users (lower(username)) WHERE deleted_at IS NULL'),
            ('users_email_lower_key',
             'CREATE UNIQUE INDEX users_email_lower_key ON public.users (lower(email)) WHERE deleted_at IS NULL'),
            ('teams_org_name_lower_key',
             'CREATE UNIQUE INDEX teams_org_name_lower_key ON public.teams (org_id, lower(name)) WHERE deleted_at IS NULL')
        ) AS w(name, definition)
    LOOP
        -- Rebuilt only when it still covers deleted rows.
        IF EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = 'public' AND c.relname = wanted.name AND i.indpred IS NULL) THEN
            EXECUTE format('DROP INDEX public.%I', wanted.name);
        END IF;
        IF to_regclass('public.' || wanted.name) IS NULL THEN
            EXECUTE wanted.definition;
        END IF;
    END LOOP;

    IF EXISTS (SELECT 1 FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
               WHERE e.extname = 'pg_trgm' AND n.nspname = 'public') THEN
        ALTER EXTENSION pg_trgm SET SCHEMA slm_server;
    END IF;
END
$$;

DROP TRIGGER IF EXISTS slm_server_audit_logs_append_only ON public.audit_logs;
DROP FUNCTION IF EXISTS slm_server.audit_logs_append_only();

-- Refuses every change of an audit row but one: its user_id or org_id set to NULL, nothing
-- else changed, because the user or organization it named no longer exists. That is exactly
-- what the foreign keys' ON DELETE SET NULL does; the same change by hand while the row it
-- names exists is refused.
CREATE FUNCTION slm_server.audit_logs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND (to_jsonb(NEW) - 'user_id' - 'org_id') = (to_jsonb(OLD) - 'user_id' - 'org_id')
       AND (NEW.user_id IS NOT DISTINCT FROM OLD.user_id
            OR (NEW.user_id IS NULL
                AND NOT EXISTS (SELECT 1 FROM public.users WHERE id = OLD.user_id)))
       AND (NEW.org_id IS NOT DISTINCT FROM OLD.org_id
            OR (NEW.org_id IS NULL
                AND NOT EXISTS (SELECT 1 FROM public.organizations WHERE id = OLD.org_id)))
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_logs is append-only';
END;
$$;
CREATE TRIGGER slm_server_audit_logs_append_only
    BEFORE UPDATE OR DELETE ON public.audit_logs
    FOR EACH ROW EXECUTE FUNCTION slm_server.audit_logs_append_only();
CREATE TRIGGER slm_server_audit_logs_no_truncate
    BEFORE TRUNCATE ON public.audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION slm_server.audit_logs_append_only();
