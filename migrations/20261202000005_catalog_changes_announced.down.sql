DROP TRIGGER IF EXISTS slm_server_catalog_changed ON public.role_permissions;
DROP TRIGGER IF EXISTS slm_server_catalog_changed ON public.permissions;
DROP TRIGGER IF EXISTS slm_server_catalog_changed ON public.roles;
DROP FUNCTION IF EXISTS slm_server.announce_catalog_change();
