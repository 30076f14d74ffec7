// A real OpenID Connect provider (panva/oidc-provider) for the sign-in tests.
// Usage: node provider.js CONFIG.json, where CONFIG is
//   {"port": 5556, "clients": [{client_id, client_secret, redirect_uris}],
//    "accounts": {"alice": {"name": ..., "email": ..., "groups": [...]}}}
// Its development login form (devInteractions) takes an account name and any
// password; the claims are those of that account. Prints "listening URL".
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const issuer = `http://127.0.0.1:${config.port}`;

const provider = new Provider(issuer, {
  clients: config.clients.map((client) => ({
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_post',
    ...client,
  })),
  async findAccount(ctx, id) {
    const claims = config.accounts[id];
    if (!claims) return undefined;
    return { accountId: id, async claims() { return { sub: id, preferred_username: id.split('@')[0], ...claims }; } };
  },
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email', 'email_verified', 'hd'],
    groups: ['groups'],
  },
  scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => false },
  cookies: { keys: ['hub-test-cookie-key'] },
  // refresh tokens for every client that asks for offline_access
  issueRefreshToken: async () => true,
});

provider.listen(config.port, '127.0.0.1', () => {
  console.log(`listening ${issuer}`);
});
