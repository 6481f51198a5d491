// The session token and the calls to the JSON API on this origin.

const TOKEN_KEY = 'nexus-usage-token';

/** EXPIRED is the message shown whenever the token cannot be used. */
export const EXPIRED = 'Your session has expired or the token is not valid — sign in again';

/** FORBIDDEN is the message shown on a 403. */
export const FORBIDDEN = 'This needs an admin account';

/**
 * takeTokenFromURL moves a token given as #token=<jwt> into sessionStorage
 * and removes it from the address bar (and so from the history).
 */
export function takeTokenFromURL() {
  const params = new URLSearchParams(location.hash.slice(1));
  if (!params.has('token')) return;
  const token = params.get('token').trim();
  history.replaceState(null, '', location.pathname + location.search);
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
}

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/**
 * decodeJWT returns a JWT's payload, or null when the text is not a JWT. It
 * does not verify the signature: the API does that on every call, and the
 * page only reads sub, role and exp for display.
 */
export function decodeJWT(token) {
  const parts = (token || '').split('.');
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    const claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
    return claims && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

/** isExpired reports whether the claims' exp (seconds) has passed. */
export function isExpired(claims, now = Date.now()) {
  return typeof claims?.exp === 'number' && claims.exp * 1000 <= now;
}

/** ApiError is a failed call: the HTTP status and the problem+json fields. */
export class ApiError extends Error {
  constructor(status, problem = {}) {
    super(problem.detail || problem.title || `request failed with status ${status}`);
    this.status = status;
    this.title = problem.title;
    this.detail = problem.detail;
    this.param = problem.param;
  }
}

let unauthorized = () => {};

/** onUnauthorized sets what happens when the token is refused or expired. */
export function onUnauthorized(fn) {
  unauthorized = fn;
}

function expiredError() {
  unauthorized();
  return new ApiError(401, { title: 'Unauthorized', detail: EXPIRED });
}

/**
 * request calls the API with the bearer token and returns the JSON answer
 * (or the Response itself with raw). A 401, or a token already expired,
 * signs the page out; other failures throw an ApiError.
 */
export async function request(path, { method = 'GET', body, raw = false, accept = 'application/json' } = {}) {
  const token = getToken();
  if (!token || !decodeJWT(token) || isExpired(decodeJWT(token))) throw expiredError();
  const headers = { Authorization: `Bearer ${token}`, Accept: accept };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, { title: 'Network error', detail: 'The service could not be reached; check the connection and try again.' });
  }
  if (res.status === 401) throw expiredError();
  if (!res.ok) {
    let problem = {};
    try {
      problem = await res.json();
    } catch {
      problem = { title: res.statusText };
    }
    throw new ApiError(res.status, problem);
  }
  if (raw) return res;
  return res.status === 204 ? null : res.json();
}

/** query builds "?a=1&b=2" from the defined values of an object. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v != null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

/**
 * download fetches a file with the bearer token and saves it under the name
 * the answer's Content-Disposition gives, or fallback.
 */
export async function download(path, fallback, accept) {
  const res = await request(path, { raw: true, accept });
  const blob = await res.blob();
  const cd = res.headers.get('Content-Disposition') || '';
  const name = /filename="?([^";]+)"?/i.exec(cd)?.[1] || fallback;
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** errorText is what the page says about a failed call. */
export function errorText(err) {
  if (err?.status === 401) return EXPIRED;
  if (err?.status === 403) return FORBIDDEN;
  if (!(err instanceof ApiError)) return `Something went wrong: ${err?.message || err}`;
  const head = err.detail || err.title || err.message;
  return err.param && !head.includes(err.param) ? `${head} (${err.param})` : head;
}
