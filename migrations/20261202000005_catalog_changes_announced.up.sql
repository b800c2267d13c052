-- The server holds each realm's roles, permissions and grants in memory (its catalog, issue:
-- reads near the database's limit). Every change to those three tables, whoever makes it (this
-- server's seeding or the AutoBot backend), announces itself when it commits, so that every
-- replica reads its catalog again at once instead of at its next periodic check. One NOTIFY per
-- statement; PostgreSQL folds a transaction's identical notifications into one.
CREATE FUNCTION slm_server.announce_catalog_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('slm_catalog', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER slm_server_catalog_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON public.roles
    FOR EACH STATEMENT EXECUTE FUNCTION slm_server.announce_catalog_change();
CREATE TRIGGER slm_server_catalog_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON public.permissions
    FOR EACH STATEMENT EXECUTE FUNCTION slm_server.announce_catalog_change();
CREATE TRIGGER slm_server_catalog_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON public.role_permissions
    FOR EACH STATEMENT EXECUTE FUNCTION slm_server.announce_catalog_change();
