DROP FUNCTION IF EXISTS slm_server.login_done(jsonb, uuid);
DROP FUNCTION IF EXISTS slm_server.logins_under_way(jsonb);
ALTER TABLE slm_server.login_failures DROP COLUMN IF EXISTS in_flight;
