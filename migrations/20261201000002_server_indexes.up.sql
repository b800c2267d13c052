-- What the server needs on top of the AutoBot tables, none of it a change to their columns:
-- case-insensitive uniqueness (the AutoBot backend compares lower(username) and lower(email)),
-- substring search over username, e-mail and display name through one trigram index, the
-- list orders, and an audit trail that cannot be rewritten.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE UNIQUE INDEX IF NOT EXISTS users_username_lower_key ON public.users (lower(username));
CREATE UNIQUE INDEX IF NOT EXISTS users_email_lower_key ON public.users (lower(email));
-- One trigram index over the three searched columns together; the search query filters on
-- exactly this expression (users::db::SEARCH_TEXT).
CREATE INDEX IF NOT EXISTS users_search_trgm_idx ON public.users USING gin (
    (username || E'\x1f' || email || E'\x1f' || coalesce(display_name, '')) gin_trgm_ops
);
CREATE INDEX IF NOT EXISTS users_created_at_id_idx ON public.users (created_at, id);

CREATE UNIQUE INDEX IF NOT EXISTS teams_org_name_lower_key ON public.teams (org_id, lower(name));
CREATE INDEX IF NOT EXISTS teams_name_order_idx ON public.teams (lower(name), id);
CREATE INDEX IF NOT EXISTS teams_name_trgm_idx ON public.teams USING gin (name gin_trgm_ops);

CREATE INDEX IF NOT EXISTS audit_logs_created_at_id_idx ON public.audit_logs (created_at, id);
CREATE INDEX IF NOT EXISTS audit_logs_resource_created_idx ON public.audit_logs (resource_id, created_at);

-- The audit trail is append-only: the database itself refuses to change or remove a row.
CREATE FUNCTION slm_server.audit_logs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_logs is append-only';
END;
$$;
CREATE TRIGGER slm_server_audit_logs_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON public.audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION slm_server.audit_logs_append_only();
