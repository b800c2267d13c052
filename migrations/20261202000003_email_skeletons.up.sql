-- Look-alike e-mails (Unicode TR39 confusables): the skeleton of each live user's e-mail and of
-- each access request's, so that a new e-mail whose skeleton matches another's is refused.
-- `email` is the address the skeleton was computed from: a row whose user's e-mail has changed
-- since (the AutoBot backend writes users too) is stale until the server computes it again.
CREATE TABLE slm_server.email_skeletons (
    user_id  uuid PRIMARY KEY REFERENCES public.users (id) ON DELETE CASCADE,
    email    text NOT NULL,
    skeleton text NOT NULL
);
CREATE INDEX email_skeletons_skeleton_idx ON slm_server.email_skeletons (skeleton);

ALTER TABLE slm_server.access_requests ADD COLUMN email_skeleton text;
CREATE INDEX access_requests_pending_skeleton_idx ON slm_server.access_requests (email_skeleton)
    WHERE status = 'pending';
