// A real OpenID Provider (panva/oidc-provider) for Palisade's end-to-end tests.
//
// Usage: node server.mjs [--port N] [--config FILE] [--watch-stdin]
//   --port N        listen on 127.0.0.1:N (default: $PORT or 0 = any free port)
//   --config FILE   JSON configuration (default: $OIDC_TEST_CONFIG_FILE, else the JSON text in
//                   $OIDC_TEST_CONFIG, else the built-in demo configuration below)
//   --watch-stdin   exit when stdin reaches end of file (the Rust harness keeps stdin open, so
//                   the provider dies with the test process even when Drop never runs)
//
// Once listening it prints exactly one line on stdout: `ISSUER http://127.0.0.1:PORT`.
// Everything else (request log, warnings) goes to stderr. See README.md for the configuration.

import { generateKeyPairSync, randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import process from 'node:process';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    config: { type: 'string' },
    'watch-stdin': { type: 'boolean', default: false },
  },
});

const DEMO_CONFIG = {
  mode: 'rich',
  clients: [{ client_id: 'demo', client_secret: 'demo-secret', redirect_uris: ['http://127.0.0.1:8080/callback'] }],
  accounts: [{
    sub: 'alice-sub',
    email: 'alice@example.com',
    email_verified: true,
    preferred_username: 'alice',
    name: 'Alice Example',
    groups: ['engineering'],
    password: 'alice-password',
  }],
};

function loadConfig() {
  const file = args.config ?? process.env.OIDC_TEST_CONFIG_FILE;
  if (file) return JSON.parse(readFileSync(file, 'utf8'));
  if (process.env.OIDC_TEST_CONFIG) return JSON.parse(process.env.OIDC_TEST_CONFIG);
  return DEMO_CONFIG;
}

const config = loadConfig();
const mode = config.mode ?? 'rich';
if (mode !== 'rich' && mode !== 'thin') {
  throw new Error(`config.mode must be "rich" or "thin", not ${JSON.stringify(mode)}`);
}
const accounts = new Map();
for (const account of config.accounts ?? []) {
  if (!account.sub || typeof account.password !== 'string') {
    throw new Error('every account needs a sub and a password');
  }
  accounts.set(account.sub, account);
}

// The login field matches an account's preferred_username, email or sub (case-insensitively for
// the first two).
function findByLogin(login) {
  const wanted = String(login ?? '').trim();
  const lower = wanted.toLowerCase();
  for (const account of accounts.values()) {
    if (account.sub === wanted
      || (account.preferred_username ?? '').toLowerCase() === lower
      || (account.email ?? '').toLowerCase() === lower) {
      return account;
    }
  }
  return undefined;
}

function passwordMatches(account, password) {
  const digest = (value) => createHash('sha256').update(String(value ?? '')).digest();
  return timingSafeEqual(digest(account.password), digest(password));
}

function accountClaims(account) {
  const claims = { sub: account.sub };
  for (const name of ['email', 'email_verified', 'preferred_username', 'name', 'groups', 'upn']) {
    if (account[name] !== undefined && account[name] !== null) claims[name] = account[name];
  }
  return claims;
}

function signingKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: randomBytes(8).toString('hex'), use: 'sig', alg: 'RS256' };
}

function configuration() {
  return {
    clients: (config.clients ?? []).map((client) => ({
      client_id: client.client_id,
      client_secret: client.client_secret,
      redirect_uris: client.redirect_uris,
      post_logout_redirect_uris: client.post_logout_redirect_uris ?? [],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      // oidc-provider also accepts client_secret_post from a client registered with
      // client_secret_basic (and vice versa): both work for every client.
      token_endpoint_auth_method: 'client_secret_basic',
    })),
    jwks: { keys: [signingKey()] },
    cookies: {
      keys: [randomBytes(32).toString('hex')],
      // Cookies ignore ports: prefixed names keep clear of an RP's cookies on 127.0.0.1.
      names: { session: 'op_session', interaction: 'op_interaction', resume: 'op_interaction_resume' },
    },
    // Scopes and the claims each releases.
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username', 'upn'],
      groups: ['groups'],
    },
    scopes: ['openid', 'email', 'profile', 'groups'],
    responseTypes: ['code'],
    // thin: for response_type=code the ID token carries only sub and protocol claims; the scope
    // claims come from userinfo alone (Okta's org authorization server).
    // rich: the ID token carries the scope claims too (Entra, Okta custom authorization server).
    conformIdTokenClaims: mode === 'thin',
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      userinfo: { enabled: true },
      // Access tokens for userinfo stay opaque; no resource indicators in these tests.
      resourceIndicators: { enabled: false },
      rpInitiatedLogout: { enabled: true },
    },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    findAccount: async (ctx, sub) => {
      const account = accounts.get(sub);
      if (!account) return undefined;
      return { accountId: sub, claims: async () => accountClaims(account) };
    },
    ttl: {
      AccessToken: 3600,
      AuthorizationCode: 60,
      Grant: 3600,
      IdToken: 3600,
      Interaction: 600,
      Session: 3600,
    },
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = page('Error', `<pre id="error">${escape(JSON.stringify(out, null, 2))}</pre>`);
    },
  };
}

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  })[c]);
}

function page(title, body) {
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${escape(title)}</title></head>
<body><h1>${escape(title)}</h1>
${body}
</body></html>
`;
}

function loginPage(uid, clientId, error) {
  const message = error ? `<p id="error">${escape(error)}</p>\n` : '';
  return page('Sign in', `${message}<p>Signing in to <code>${escape(clientId)}</code></p>
<form id="login-form" method="post" action="/interaction/${escape(uid)}/login" autocomplete="off">
  <label>Login <input type="text" id="login" name="login" autofocus></label>
  <label>Password <input type="password" id="password" name="password"></label>
  <button type="submit" id="submit">Sign in</button>
</form>
<p><a id="abort" href="/interaction/${escape(uid)}/abort">Cancel</a></p>`);
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function send(res, status, html) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(html);
}

// Grants everything the client asked for: these tests have no consent screen.
async function autoConsent(provider, req, res, details) {
  const { prompt: { details: missing }, params, session } = details;
  let grant;
  if (details.grantId) {
    grant = await provider.Grant.find(details.grantId);
  } else {
    grant = new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  }
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  if (missing.missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
  }
  const grantId = await grant.save();
  const consent = details.grantId ? {} : { grantId };
  await provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
}

// Routes: GET /interaction/:uid (login form, or auto-consent), POST /interaction/:uid/login,
// GET /interaction/:uid/abort. Returns false when the request is not an interaction route.
async function interaction(provider, req, res) {
  const url = new URL(req.url, 'http://127.0.0.1');
  const match = /^\/interaction\/([A-Za-z0-9_-]+)(\/login|\/abort)?$/.exec(url.pathname);
  if (!match) return false;
  const [, uid, action] = match;
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    send(res, 400, page('Error', `<p id="error">${escape(err.message)}</p>`));
    return true;
  }
  if (details.uid !== uid) {
    send(res, 400, page('Error', '<p id="error">interaction mismatch</p>'));
    return true;
  }
  const { prompt, params } = details;
  if (!action && req.method === 'GET') {
    if (prompt.name === 'login') {
      send(res, 200, loginPage(uid, params.client_id));
    } else if (prompt.name === 'consent') {
      await autoConsent(provider, req, res, details);
    } else {
      send(res, 400, page('Error', `<p id="error">unsupported prompt ${escape(prompt.name)}</p>`));
    }
  } else if (action === '/login' && req.method === 'POST') {
    const form = await readForm(req);
    const account = findByLogin(form.get('login'));
    if (prompt.name !== 'login') {
      send(res, 400, page('Error', '<p id="error">no login pending</p>'));
    } else if (!account || !passwordMatches(account, form.get('password'))) {
      process.stderr.write(`oidc-provider: refused login for ${JSON.stringify(form.get('login'))}\n`);
      send(res, 401, loginPage(uid, params.client_id, 'Invalid login or password.'));
    } else {
      await provider.interactionFinished(req, res, {
        login: { accountId: account.sub, amr: ['pwd'] },
      }, { mergeWithLastSubmission: false });
    }
  } else if (action === '/abort' && req.method === 'GET') {
    await provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
  } else {
    send(res, 405, page('Error', '<p id="error">method not allowed</p>'));
  }
  return true;
}

async function main() {
  let handler = (req, res) => send(res, 503, 'starting');
  const server = http.createServer((req, res) => handler(req, res));
  const port = Number(args.port ?? process.env.PORT ?? 0);
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, configuration());
  provider.on('server_error', (ctx, err) => process.stderr.write(`oidc-provider: server_error ${err.stack}\n`));
  const callback = provider.callback();
  handler = (req, res) => {
    res.on('finish', () => process.stderr.write(`oidc-provider: ${req.method} ${req.url.split('?')[0]} -> ${res.statusCode}\n`));
    interaction(provider, req, res)
      .then((handled) => { if (!handled) callback(req, res); })
      .catch((err) => {
        process.stderr.write(`oidc-provider: interaction error ${err.stack}\n`);
        if (!res.headersSent) send(res, 500, page('Error', `<p id="error">${escape(err.message)}</p>`));
        else res.end();
      });
  };
  if (args['watch-stdin']) {
    process.stdin.on('end', () => process.exit(0));
    process.stdin.on('close', () => process.exit(0));
    process.stdin.resume();
  }
  for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
  process.stdout.write(`ISSUER ${issuer}\n`);
}

main().catch((err) => {
  process.stderr.write(`oidc-provider: failed to start: ${err.stack}\n`);
  process.exit(1);
});
