DROP INDEX IF EXISTS slm_server.access_requests_pending_skeleton_idx;
ALTER TABLE slm_server.access_requests DROP COLUMN IF EXISTS email_skeleton;
DROP TABLE IF EXISTS slm_server.email_skeletons;
