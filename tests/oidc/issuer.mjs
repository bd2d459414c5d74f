// A real OIDC issuer for the Rust integration tests (crates/tollgate/tests/oidc.rs):
// oauth2-mock-server on 127.0.0.1 (port 0) with RS256, ES256 and EdDSA keys,
// plus a small control API on another port 0:
//   POST /sign   {alg?, kid?, claims?, header?, expiresIn?, forge?}  -> token text
//                forge: "none" (alg none), "hs256-pubkey" (HS256 keyed with the
//                RSA public key PEM), "tamper" (payload changed after signing)
//   POST /rotate {alg?}                                               -> {kid}
//   POST /stop                                  stops the issuer's HTTP server
// The first stdout line is JSON: {issuer, control, kids}. Exits when stdin closes.
import http from 'node:http';
import crypto from 'node:crypto';
import { OAuth2Server } from 'oauth2-mock-server';

const server = new OAuth2Server();
const kids = {};
for (const alg of ['RS256', 'ES256', 'EdDSA']) {
  try {
    kids[alg] = (await server.issuer.keys.generate(alg)).kid;
  } catch (e) {
    process.stderr.write(`cannot generate ${alg} key: ${e}\n`);
  }
}
await server.start(0, '127.0.0.1');
// The library names the issuer `localhost`; pin the address it listens on.
server.issuer.url = `http://127.0.0.1:${server.address().port}`;
const issuerUrl = server.issuer.url;

const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

async function sign(input) {
  const alg = input.alg ?? 'RS256';
  const kid = input.kid ?? kids[alg];
  const claims = { aud: 'tollgate', sub: 'alice', ...(input.claims ?? {}) };
  const header = input.header ?? {};
  if (input.forge === 'none' || input.forge === 'hs256-pubkey') {
    const now = Math.floor(Date.now() / 1000);
    const payload = { iss: issuerUrl, iat: now, exp: now + 3600, ...claims };
    if (input.forge === 'none') {
      return `${b64({ alg: 'none', typ: 'JWT', kid })}.${b64(payload)}.`;
    }
    const rsa = server.issuer.keys.toJSON().find((k) => k.kty === 'RSA');
    const pem = crypto.createPublicKey({ key: rsa, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
    const signingInput = `${b64({ alg: 'HS256', typ: 'JWT', kid: rsa.kid })}.${b64(payload)}`;
    const mac = crypto.createHmac('sha256', pem).update(signingInput).digest('base64url');
    return `${signingInput}.${mac}`;
  }
  const token = await server.issuer.buildToken({
    kid,
    expiresIn: input.expiresIn,
    scopesOrTransform: (h, p) => {
      Object.assign(p, claims);
      Object.assign(h, header);
      for (const [k, v] of Object.entries(claims)) if (v === null) delete p[k];
    },
  });
  if (input.forge === 'tamper') {
    const [h, p, s] = token.split('.');
    const payload = JSON.parse(Buffer.from(p, 'base64url'));
    payload.sub = 'mallory';
    payload.realm_access = { roles: ['ops'] };
    return `${h}.${b64(payload)}.${s}`;
  }
  return token;
}

const control = http.createServer(async (req, res) => {
  let body = '';
  for await (const chunk of req) body += chunk;
  try {
    const input = body ? JSON.parse(body) : {};
    let out;
    if (req.url === '/sign') {
      out = await sign(input);
    } else if (req.url === '/rotate') {
      const alg = input.alg ?? 'RS256';
      const key = await server.issuer.keys.generate(alg);
      kids[alg] = key.kid;
      out = JSON.stringify({ kid: key.kid });
    } else if (req.url === '/stop') {
      await server.stop();
      server.issuer.url = issuerUrl; // keep signing tokens for the same issuer
      out = 'stopped';
    } else {
      res.writeHead(404);
      res.end('unknown control route');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(out);
  } catch (e) {
    res.writeHead(500);
    res.end(String(e?.stack ?? e));
  }
});
control.listen(0, '127.0.0.1', () => {
  const controlUrl = `http://127.0.0.1:${control.address().port}`;
  process.stdout.write(`${JSON.stringify({ issuer: issuerUrl, control: controlUrl, kids })}\n`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
