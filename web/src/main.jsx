// Entry point: the token, the sign-in panel and the top-level tabs.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import './style.css';
import { AdminView } from './admin.jsx';
import { EXPIRED, clearToken, decodeJWT, getToken, isExpired, onUnauthorized, setToken, takeTokenFromURL } from './api.js';
import { dateTime } from './format.js';
import { AlertsView } from './notify.jsx';
import { Tabs, tabPanelProps, track } from './ui.jsx';
import { UsageView, ownRoutes } from './user.jsx';

/** session reads the stored token: {claims} when usable, else {message}. */
function session() {
  const token = getToken();
  if (!token) return {};
  const claims = decodeJWT(token);
  if (!claims || isExpired(claims)) {
    clearToken();
    return { message: EXPIRED };
  }
  return { claims };
}

function SignIn({ message, onSignIn }) {
  const [text, setText] = useState('');
  const [problem, setProblem] = useState(null);
  const shown = problem || message;
  useEffect(() => {
    track('signin', shown ? 'error' : null);
    return () => track('signin', null);
  }, [shown]);
  const submit = (e) => {
    e.preventDefault();
    const token = text.trim().replace(/^Bearer\s+/i, '');
    const claims = decodeJWT(token);
    if (!claims) return setProblem('This is not a token: a JWT is three parts separated by dots.');
    if (isExpired(claims)) return setProblem(EXPIRED);
    setToken(token);
    onSignIn({ claims });
  };
  return (
    <main class="signin-wrap">
      <section class="card signin" data-testid="signin" aria-labelledby="signin-h">
        <h1 id="signin-h">Sign in to Nexus Usage</h1>
        {shown && (
          <p class="note error" role="alert" data-testid="error-message">
            {shown}
          </p>
        )}
        <form onSubmit={submit}>
          <label for="token">Access token</label>
          <textarea id="token" rows={6} spellcheck={false} autocomplete="off" required value={text} onInput={(e) => setText(e.currentTarget.value)} />
          <p class="muted small">
            Paste the token (JWT) your account page gives you. It stays in this browser tab only and is sent to this site alone, with each request.
          </p>
          <button type="submit">Sign in</button>
        </form>
      </section>
    </main>
  );
}

function Dashboard({ claims, onSignOut }) {
  const admin = claims.role === 'admin';
  const tabs = [{ id: 'usage', label: 'My usage', testid: 'usage-tab' }];
  if (admin) tabs.push({ id: 'admin', label: 'Admin', testid: 'admin-tab' });
  tabs.push({ id: 'alerts', label: 'My alerts', testid: 'alerts-tab' });
  const [tab, setTab] = useState('usage');
  return (
    <>
      <header class="top">
        <div class="brand">Nexus Usage</div>
        <Tabs tabs={tabs} active={tab} onSelect={setTab} label="Views" />
        <div class="who">
          <span class="mono" title="Your user id">
            {claims.sub || 'unknown user'}
          </span>
          {admin && <span class="badge">admin</span>}
          {claims.exp && <span class="muted small">until {dateTime(claims.exp * 1000)}</span>}
          <button type="button" class="link" onClick={onSignOut}>
            Sign out
          </button>
        </div>
      </header>
      <main {...tabPanelProps(tab)}>{tab === 'admin' && admin ? <AdminView /> : tab === 'alerts' ? <AlertsView /> : <UsageView routes={ownRoutes} />}</main>
    </>
  );
}

function App() {
  const [auth, setAuth] = useState(session);
  // Set during render, not in an effect: the views' first requests start in
  // their own effects, which run before this component's.
  onUnauthorized(() => {
    clearToken();
    setAuth({ message: EXPIRED });
  });
  if (!auth.claims) return <SignIn message={auth.message} onSignIn={setAuth} />;
  const signOut = () => {
    clearToken();
    setAuth({});
  };
  return <Dashboard claims={auth.claims} onSignOut={signOut} />;
}

takeTokenFromURL();
render(<App />, document.getElementById('app'));
