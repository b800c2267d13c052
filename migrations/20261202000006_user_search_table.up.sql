-- User search in a narrow table of the server's own (issue: performance, search at a million
-- users). A search used to filter public.users itself through a trigram index over an
-- expression: every candidate meant reading a wide row and lower-casing its three columns
-- (ILIKE), once for the page and again for the count, about 2.5 µs each. Here each live user
-- has one short row: its id, the list's order, is_active, and its searched text already
-- lower-cased, which a case-sensitive LIKE matches byte by byte. The text joins username,
-- e-mail and display name with a unit separator (U+001F) so that no match spans two of them.
--
-- Triggers on public.users keep it exact in the same transaction, whoever writes (this server,
-- the AutoBot backend, a bulk import). The function runs as its owner (the role that migrates),
-- so a writer with no privilege on the server's schema is not refused; its search_path is fixed.
CREATE TABLE slm_server.user_search (
    user_id    uuid PRIMARY KEY,
    created_at timestamptz NOT NULL,
    is_active  boolean NOT NULL,
    haystack   text NOT NULL
);
CREATE INDEX user_search_created_at_idx ON slm_server.user_search (created_at, user_id);
-- The operator class lives wherever pg_trgm was installed (slm_server since 0.3).
DO $$
BEGIN
    EXECUTE format(
        'CREATE INDEX user_search_haystack_trgm_idx ON slm_server.user_search USING gin (haystack %I.gin_trgm_ops)',
        (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
         WHERE e.extname = 'pg_trgm'));
END
$$;

CREATE FUNCTION slm_server.user_search_sync() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM slm_server.user_search;
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM slm_server.user_search WHERE user_id = OLD.id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.deleted_at IS NULL THEN
        INSERT INTO slm_server.user_search (user_id, created_at, is_active, haystack)
        VALUES (NEW.id, NEW.created_at, NEW.is_active,
                lower(NEW.username || E'\x1f' || NEW.email || E'\x1f' || coalesce(NEW.display_name, '')));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER slm_server_user_search_insert
    AFTER INSERT ON public.users
    FOR EACH ROW EXECUTE FUNCTION slm_server.user_search_sync();
-- Only the changes that move a user in a search: a login's last_login_at, say, costs nothing.
CREATE TRIGGER slm_server_user_search_update
    AFTER UPDATE ON public.users
    FOR EACH ROW
    WHEN (OLD.id IS DISTINCT FROM NEW.id
          OR OLD.username IS DISTINCT FROM NEW.username
          OR OLD.email IS DISTINCT FROM NEW.email
          OR OLD.display_name IS DISTINCT FROM NEW.display_name
          OR OLD.is_active IS DISTINCT FROM NEW.is_active
          OR OLD.deleted_at IS DISTINCT FROM NEW.deleted_at
          OR OLD.created_at IS DISTINCT FROM NEW.created_at)
    EXECUTE FUNCTION slm_server.user_search_sync();
CREATE TRIGGER slm_server_user_search_delete
    AFTER DELETE ON public.users
    FOR EACH ROW EXECUTE FUNCTION slm_server.user_search_sync();
CREATE TRIGGER slm_server_user_search_truncate
    AFTER TRUNCATE ON public.users
    FOR EACH STATEMENT EXECUTE FUNCTION slm_server.user_search_sync();

INSERT INTO slm_server.user_search (user_id, created_at, is_active, haystack)
SELECT id, created_at, is_active,
       lower(username || E'\x1f' || email || E'\x1f' || coalesce(display_name, ''))
FROM public.users WHERE deleted_at IS NULL;
ANALYZE slm_server.user_search;

-- Searches no longer read public.users' own trigram index; one index fewer to write there.
DROP INDEX IF EXISTS public.users_search_trgm_idx;
