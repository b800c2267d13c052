// The OpenID provider of the SSO tests: the certified `oidc-provider` package, configured from
// the environment by the test that starts it. Test tooling only, never shipped.
//
//   PORT       the port to listen on (127.0.0.1)
//   CLIENTS    JSON: [{"client_id", "client_secret", "redirect_uris": [...]}]
//   ACCOUNTS   JSON: {"<login>": {"sub", "email", "email_verified", "preferred_username",
//              "name", "groups": [...]}}; the login page accepts any password
//
// A test may make the token endpoint misbehave, to show that the server refuses what comes of
// it: `POST /__test/mode?id_token=other_key` signs the ID tokens it hands out with a key the
// provider does not publish; `?id_token=normal` stops that.
import Provider from 'oidc-provider';
import * as jose from 'jose';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const clients = JSON.parse(process.env.CLIENTS);
const accounts = JSON.parse(process.env.ACCOUNTS);

const configuration = {
  clients: clients.map((c) => ({
    ...c,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  })),
  pkce: { required: () => true },
  // Scope claims go into the ID token itself, as most providers send them.
  conformIdTokenClaims: false,
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username', 'groups'],
  },
  findAccount: async (ctx, id) => {
    const account = accounts[id];
    if (!account) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...account }) };
  },
  // A first-party client: no consent screen, only the login form.
  loadExistingGrant: async (ctx) => {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid email profile');
    grant.addOIDCClaims(['email', 'email_verified', 'name', 'preferred_username', 'groups']);
    await grant.save();
    return grant;
  },
  features: { devInteractions: { enabled: true } },
};

const provider = new Provider(issuer, configuration);
let mode = 'normal';
const otherKey = await jose.generateKeyPair('RS256');

provider.use(async (ctx, next) => {
  if (ctx.path === '/__test/mode' && ctx.method === 'POST') {
    mode = ctx.query.id_token === 'other_key' ? 'other_key' : 'normal';
    ctx.status = 204;
    return;
  }
  await next();
  if (ctx.path === '/token' && mode === 'other_key' && ctx.body && ctx.body.id_token) {
    const header = jose.decodeProtectedHeader(ctx.body.id_token);
    const claims = jose.decodeJwt(ctx.body.id_token);
    ctx.body.id_token = await new jose.SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid: header.kid })
      .sign(otherKey.privateKey);
  }
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
