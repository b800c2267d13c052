-- The password checks of an account under way (issue: correct passwords refused under
-- concurrency): each login reserves a place before its password is checked, and at most
-- LOCKOUT_THRESHOLD minus the failures so far are under way at once, so that no more wrong
-- passwords than the threshold ever reach the hash, while further logins wait for a place
-- instead of being refused. Each element is {"id": <the login's uuid>, "at": <when>}; one older
-- than a minute is a login that never finished (a crash) and no longer holds its place.
ALTER TABLE slm_server.login_failures ADD COLUMN in_flight jsonb NOT NULL DEFAULT '[]';

-- The reservations of `in_flight` that still hold their place.
CREATE FUNCTION slm_server.logins_under_way(in_flight jsonb) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(a), '[]'::jsonb) FROM jsonb_array_elements(in_flight) a
    WHERE (a->>'at')::timestamptz > now() - interval '60 seconds'
$$;

-- `in_flight` without the reservation `id`.
CREATE FUNCTION slm_server.login_done(in_flight jsonb, id uuid) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_agg(a), '[]'::jsonb) FROM jsonb_array_elements(in_flight) a
    WHERE a->>'id' <> id::text
$$;
