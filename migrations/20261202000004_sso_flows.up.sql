-- SSO sign-ins in flight: from the initiation (which sends the browser to the provider) to the
-- provider's redirect back. `state` is stored hashed, single use, bound to the browser that
-- started the sign-in (a cookie, also hashed) and to its provider, with the OpenID `nonce`, the
-- PKCE verifier, the redirect URI the code is exchanged with, and where the sign-in lands.
CREATE TABLE slm_server.sso_flows (
    state_hash    bytea PRIMARY KEY,
    provider_id   uuid NOT NULL REFERENCES public.sso_providers (id) ON DELETE CASCADE,
    browser_hash  bytea NOT NULL,
    nonce         text NOT NULL,
    pkce_verifier text NOT NULL,
    redirect_uri  text NOT NULL,
    -- Where the sign-in lands: the dashboard's page with a token, or the console's session.
    landing       text NOT NULL DEFAULT 'dashboard' CHECK (landing IN ('dashboard', 'console')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz
);
CREATE INDEX sso_flows_expires_at_idx ON slm_server.sso_flows (expires_at);
