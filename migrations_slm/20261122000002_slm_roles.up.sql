-- SLM realm roles: admin ⊃ manager ⊃ viewer.
INSERT INTO roles (id, name, rank, description) VALUES
    (1, 'viewer', 1, 'Reads AutoBot users and teams'),
    (2, 'manager', 2, 'Manages AutoBot users, teams and access requests; reads SLM users'),
    (3, 'admin', 3, 'Manages everything, including SLM users and the audit log');
