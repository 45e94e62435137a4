// The real OpenID provider for the end-to-end tests: `oidc-provider` (a certified implementation)
// on 127.0.0.1, configured for what oidc-auth needs to exercise.
//
//   node server.mjs [port]        (or PORT=...; 0 or nothing picks a free port)
//
// Prints exactly one line `READY <issuer>` on stdout once it accepts connections; everything else
// (oidc-provider's development warnings, request errors) goes to stderr.
//
// Clients (both `application_type: native`, so any loopback port is accepted in redirect URIs,
// RFC 8252 section 7.3):
//   confidential-client / confidential-secret   client_secret_basic
//   public-client                                none (PKCE only)
// Both: authorization_code, refresh_token, device_code grants; PKCE with S256 required; a refresh
// token is issued on every code/device exchange (no offline_access needed).
//
// Redirect URIs: http://localhost/<path> and http://127.0.0.1/<path> with any port, for the paths
// /callback, /auth/v2/callback and /api/auth/v2/callback, plus every URI in EXTRA_REDIRECT_URIS
// (comma separated). Post-logout redirect URIs: exact match (oidc-provider does not vary ports
// there): http://localhost:<port>/ and .../logged-out for ports 53100-53105 on localhost and
// 127.0.0.1, plus EXTRA_POST_LOGOUT_REDIRECT_URIS (comma separated).
//
// Access tokens are JWTs (RS256, typ at+jwt) for the resource `urn:oidc-auth-tests:api` with
// `aud: "api"`, whether or not the client names the resource. Their `scope` holds the requested
// scopes among `openid profile email groups offline_access admin`, and they carry the account's
// `groups`, `preferred_username`, `email`, `email_verified`, `name`, `given_name` and
// `family_name`. Because they have an audience, the provider's own userinfo endpoint rejects them
// (oidc-provider only accepts audience-less, opaque tokens there).
//
// Login (devInteractions): any login name and any non-empty password; the login name becomes
// `sub`. The account `alice` has the claims below; any other name gets only `sub`.
//
// Test-only control routes on the same port (never part of the provider):
//   POST /__test/rotate   new RS256 signing key; tokens are signed with it from now on, the
//                         previous key stays published. Answers {"kid": new, "previous": old}.
//   GET  /__test/keys     {"signing": kid, "published": [kids]}
//
// EXIT_WITH_STDIN=1 makes the process exit when its stdin closes (the Rust harness sets it).

import * as crypto from 'node:crypto';
import * as http from 'node:http';

import Provider, { errors } from 'oidc-provider';

const HOST = '127.0.0.1';
const RESOURCE = 'urn:oidc-auth-tests:api';
const AUDIENCE = 'api';
const RESOURCE_SCOPES = 'openid profile email groups offline_access admin';
const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

const ACCOUNTS = {
  alice: {
    given_name: 'Alice',
    family_name: 'van der Berg',
    name: 'Alice van der Berg',
    email: 'alice@example.com',
    email_verified: true,
    groups: ['admins'],
    preferred_username: 'alice',
  },
};

// Claims copied into every JWT access token issued for an account.
const ACCESS_TOKEN_CLAIMS = [
  'groups', 'preferred_username', 'email', 'email_verified', 'name', 'given_name', 'family_name',
];

const list = (value) => (value || '').split(',').map((s) => s.trim()).filter(Boolean);

function redirectUris() {
  const uris = [];
  for (const host of ['localhost', '127.0.0.1']) {
    for (const path of ['/callback', '/auth/v2/callback', '/api/auth/v2/callback']) {
      uris.push(`http://${host}${path}`);
    }
  }
  return [...new Set([...uris, ...list(process.env.EXTRA_REDIRECT_URIS)])];
}

function postLogoutRedirectUris() {
  const uris = [];
  for (const host of ['localhost', '127.0.0.1']) {
    for (let port = 53100; port <= 53105; port += 1) {
      uris.push(`http://${host}:${port}/`, `http://${host}:${port}/logged-out`);
    }
  }
  return [...new Set([...uris, ...list(process.env.EXTRA_POST_LOGOUT_REDIRECT_URIS)])];
}

function newSigningKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return {
    ...jwk, kid: `test-${crypto.randomBytes(6).toString('hex')}`, alg: 'RS256', use: 'sig',
  };
}

const grants = ['authorization_code', 'refresh_token', DEVICE_CODE_GRANT];

function clients() {
  const common = {
    application_type: 'native',
    grant_types: grants,
    response_types: ['code'],
    redirect_uris: redirectUris(),
    post_logout_redirect_uris: postLogoutRedirectUris(),
  };
  return [
    {
      ...common,
      client_id: 'confidential-client',
      client_secret: 'confidential-secret',
      token_endpoint_auth_method: 'client_secret_basic',
    },
    {
      ...common,
      client_id: 'public-client',
      token_endpoint_auth_method: 'none',
    },
  ];
}

// Same cookie keys for every provider instance, so sessions survive a key rotation.
const cookieKeys = [crypto.randomBytes(32).toString('hex')];

function configuration(keys) {
  return {
    clients: clients(),
    jwks: { keys },
    cookies: { keys: cookieKeys },
    claims: {
      openid: ['sub'],
      profile: ['name', 'given_name', 'family_name', 'preferred_username'],
      email: ['email', 'email_verified'],
      groups: ['groups'],
    },
    conformIdTokenClaims: false,
    responseTypes: ['code'],
    async findAccount(ctx, sub) {
      const claims = ACCOUNTS[sub] || {};
      return {
        accountId: sub,
        async claims() {
          return { sub, ...claims };
        },
      };
    },
    async extraTokenClaims(ctx, token) {
      if (token.kind !== 'AccessToken' || !token.accountId) return undefined;
      const account = ACCOUNTS[token.accountId];
      if (!account) return undefined;
      return Object.fromEntries(ACCESS_TOKEN_CLAIMS.map((name) => [name, account[name]]));
    },
    pkce: { methods: ['S256'], required: () => true },
    async issueRefreshToken(ctx, client) {
      return client.grantTypeAllowed('refresh_token');
    },
    features: {
      devInteractions: { enabled: true },
      deviceFlow: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
      userinfo: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => RESOURCE,
        useGrantedResource: async () => true,
        async getResourceServerInfo(ctx, resourceIndicator) {
          if (resourceIndicator !== RESOURCE) throw new errors.InvalidTarget();
          return {
            scope: RESOURCE_SCOPES,
            audience: AUDIENCE,
            accessTokenTTL: 60 * 60,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    ttl: {
      AccessToken: 60 * 60,
      AuthorizationCode: 60,
      DeviceCode: 10 * 60,
      IdToken: 60 * 60,
      Interaction: 60 * 60,
      Grant: 24 * 60 * 60,
      RefreshToken: 24 * 60 * 60,
      Session: 24 * 60 * 60,
    },
    async renderError(ctx, out, error) {
      ctx.type = 'html';
      const lines = Object.entries(out).map(([k, v]) => `<pre><strong>${k}</strong>: ${String(v).replace(/[<>&"]/g, '')}</pre>`);
      ctx.body = `<!DOCTYPE html><html><head><title>oops! something went wrong</title></head><body><h1>oops! something went wrong</h1>${lines.join('')}</body></html>`;
      if (error && error.statusCode >= 500) console.error(error);
    },
  };
}

function buildProvider(issuer, keys) {
  const provider = new Provider(issuer, configuration(keys));
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  return { provider, handler: provider.callback() };
}

function parsePort() {
  const raw = process.argv[2] ?? process.env.PORT ?? '0';
  const port = Number.parseInt(raw, 10);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`invalid port: ${raw}`);
    process.exit(2);
  }
  return port;
}

let current; // { provider, handler }
let keys = [newSigningKey()];
let issuer;

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

const server = http.createServer((req, res) => {
  const path = (req.url || '/').split('?')[0];
  if (path === '/__test/rotate') {
    if (req.method !== 'POST') return json(res, 405, { error: 'method_not_allowed' });
    const previous = keys[0];
    // The new key first: oidc-provider signs with the first key that fits the algorithm. The old
    // one stays published so tokens it signed still verify.
    keys = [newSigningKey(), previous];
    current = buildProvider(issuer, keys);
    return json(res, 200, { kid: keys[0].kid, previous: previous.kid });
  }
  if (path === '/__test/keys') {
    return json(res, 200, { signing: keys[0].kid, published: keys.map((k) => k.kid) });
  }
  if (!current) return json(res, 503, { error: 'starting' });
  return current.handler(req, res);
});

server.listen(parsePort(), HOST, () => {
  const { port } = server.address();
  issuer = `http://${HOST}:${port}`;
  current = buildProvider(issuer, keys);
  process.stdout.write(`READY ${issuer}\n`);
});

server.on('error', (err) => {
  console.error(err);
  process.exit(1);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => process.exit(0));
}
// With EXIT_WITH_STDIN=1, exit when stdin closes: the test harness holds our stdin, so the
// provider goes away with the test process even if that one is killed.
if (process.env.EXIT_WITH_STDIN === '1') {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}
