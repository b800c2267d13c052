-- Look-alike e-mails (Unicode TR39 confusables): the e-mail addresses in use — each live
-- user's and each pending access request's — with their confusable skeletons, so that a new
-- address whose skeleton matches another's is refused. `email` is the address the skeleton was
-- computed from: the entry of a user whose e-mail changed elsewhere (the AutoBot backend writes
-- users too) is stale until the server computes it again.
CREATE TABLE slm_server.email_skeletons (
    holder   uuid PRIMARY KEY,
    kind     text NOT NULL CHECK (kind IN ('user', 'request')),
    email    text NOT NULL,
    skeleton text NOT NULL
);
CREATE INDEX email_skeletons_skeleton_idx ON slm_server.email_skeletons (skeleton);
