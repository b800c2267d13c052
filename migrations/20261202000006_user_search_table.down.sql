DROP TRIGGER IF EXISTS slm_server_user_search_truncate ON public.users;
DROP TRIGGER IF EXISTS slm_server_user_search_delete ON public.users;
DROP TRIGGER IF EXISTS slm_server_user_search_update ON public.users;
DROP TRIGGER IF EXISTS slm_server_user_search_insert ON public.users;
DROP FUNCTION IF EXISTS slm_server.user_search_sync();
DROP TABLE IF EXISTS slm_server.user_search;
DO $$
BEGIN
    EXECUTE format(
        'CREATE INDEX IF NOT EXISTS users_search_trgm_idx ON public.users USING gin ((username || E''\x1f'' || email || E''\x1f'' || coalesce(display_name, '''')) %I.gin_trgm_ops)',
        (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
         WHERE e.extname = 'pg_trgm'));
END
$$;
