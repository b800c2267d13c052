DROP TABLE IF EXISTS slm_server.email_skeletons;
