DROP TABLE IF EXISTS slm_server.sso_flows;
