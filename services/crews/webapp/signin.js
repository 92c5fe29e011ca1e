// Who is working: the crew member's access token. From the municipality's identity provider
// (OpenID Connect, authorization code with PKCE, done in this browser: a public client keeps no
// secret), or in development from the demo sign-in, which hands it over in the URL's fragment.
// The token stays on the phone so that work recorded offline can be sent later.

const SESSION_KEY = "cuadrillas.sesion";
const FLOW_KEY = "cuadrillas.oidc"; // the state and verifier, across the provider's redirect

function base64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomText(size = 32) {
  return base64url(crypto.getRandomValues(new Uint8Array(size)));
}

/** The token's claims, read only to show who is signed in: the service verifies the token. */
export function claimsOf(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const text = atob(part + "=".repeat((4 - (part.length % 4)) % 4));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(text, (c) => c.charCodeAt(0))));
  } catch {
    return {};
  }
}

function save(tokens) {
  const claims = claimsOf(tokens.access_token);
  const expiresAt = tokens.expires_in
    ? Date.now() + Number(tokens.expires_in) * 1000
    : (claims.exp || 0) * 1000;
  const session = { access_token: tokens.access_token, refresh_token: tokens.refresh_token || null,
                    expires_at: expiresAt };
  localStorage.setItem(SESSION_KEY, JSON.stringify(session));
  return session;
}

/** The stored session ({access_token, refresh_token, expires_at}) or null; an expired one is
 * still returned (work goes on offline), `expired` says so. */
export function currentSession() {
  try {
    const session = JSON.parse(localStorage.getItem(SESSION_KEY) || "null");
    if (!session || !session.access_token) return null;
    return { ...session, expired: session.expires_at && Date.now() > session.expires_at - 30000 };
  } catch {
    return null;
  }
}

export function signOut() {
  localStorage.removeItem(SESSION_KEY);
}

async function discovery(oidc) {
  const answer = await fetch(`${oidc.issuer}/.well-known/openid-configuration`);
  if (!answer.ok) throw new Error(`el proveedor de identidad respondió ${answer.status}`);
  return answer.json();
}

function redirectUri() {
  const here = new URL("./", location.href);
  return `${here.origin}${here.pathname}`;
}

/** Off to the identity provider's sign-in page (it comes back with ?code=…&state=…). */
export async function signIn(config) {
  const provider = await discovery(config.oidc);
  const verifier = randomText(48);
  const challenge = base64url(await crypto.subtle.digest("SHA-256",
    new TextEncoder().encode(verifier)));
  const state = randomText(16);
  sessionStorage.setItem(FLOW_KEY, JSON.stringify({ state, verifier }));
  const url = new URL(provider.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: "code", client_id: config.oidc.client_id, redirect_uri: redirectUri(),
    scope: config.oidc.scope, state, code_challenge: challenge, code_challenge_method: "S256",
  }).toString();
  location.assign(url.toString());
}

async function tokenRequest(config, fields) {
  const provider = await discovery(config.oidc);
  const answer = await fetch(provider.token_endpoint, {
    method: "POST", body: new URLSearchParams({ client_id: config.oidc.client_id, ...fields }),
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
  });
  const body = await answer.json().catch(() => ({}));
  if (!answer.ok || !body.access_token) {
    throw new Error(body.error_description || body.error || `respuesta ${answer.status}`);
  }
  return save(body);
}

/** Finish a sign-in the page was brought back from: the demo's fragment, or the provider's
 * code (exchanged for tokens with the verifier only this tab holds). Clears the URL. */
export async function completeSignIn(config) {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const query = new URLSearchParams(location.search);
  const clean = () => history.replaceState(null, "", location.pathname);
  if (fragment.get("access_token")) {
    save({ access_token: fragment.get("access_token") });
    clean();
    return;
  }
  if (!query.get("code") && !query.get("error")) return;
  const flow = JSON.parse(sessionStorage.getItem(FLOW_KEY) || "null");
  sessionStorage.removeItem(FLOW_KEY);
  clean();
  if (query.get("error")) {
    throw new Error(query.get("error_description") || query.get("error"));
  }
  if (!config.oidc || !flow || flow.state !== query.get("state")) {
    throw new Error("la respuesta del inicio de sesión no corresponde a esta solicitud");
  }
  await tokenRequest(config, { grant_type: "authorization_code", code: query.get("code"),
                               redirect_uri: redirectUri(), code_verifier: flow.verifier });
}

/** A fresh access token from the refresh token, when the provider gave one; else null. */
export async function renew(config) {
  const session = currentSession();
  if (!config.oidc || !session || !session.refresh_token) return null;
  try {
    return await tokenRequest(config, { grant_type: "refresh_token",
                                        refresh_token: session.refresh_token });
  } catch {
    return null;
  }
}
