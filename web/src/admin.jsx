// The admin views: system totals and top users, a user's view for
// support with the plan form and audit trail, quarantined events, the
// overage ledger and backfills.
import { useEffect, useId, useState } from 'preact/hooks';
import { errorText, query, request } from './api.js';
import { addDays, dateTime, money, num, pct, periodText, today } from './format.js';
import { ErrorNote, Loading, RangePicker, SortTable, Stat, Tabs, lastDays, rangeProblem, tabPanelProps, useLoad, usePaged } from './ui.jsx';
import { AlertsView } from './notify.jsx';
import { UsageView, userRoutes } from './user.jsx';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

// UserButton opens a user's view; short shows only the id's first part.
function UserButton({ id, open, short }) {
  return (
    <button type="button" class="link mono" onClick={() => open(id)} title={id} aria-label={`Open the view of user ${id}`}>
      {short ? `${id.slice(0, 8)}…` : id}
    </button>
  );
}

// When shows a timestamp that may wrap between the day and the time only.
function When({ t }) {
  const [day, time] = dateTime(t).split(/ (.*)/);
  return (
    <>
      <span class="nowrap">{day}</span> <span class="nowrap">{time}</span>
    </>
  );
}

function ShortID({ id }) {
  return (
    <span class="mono" title={id}>
      {id && id.length > 12 ? `${id.slice(0, 8)}…` : id || '—'}
    </span>
  );
}

function SystemSummary({ s }) {
  const plans = Object.entries(s.calls_by_plan || {}).map(([plan, calls]) => ({ plan, calls }));
  return (
    <div data-testid="admin-summary">
      <div class="cards">
        <section class="card">
          <Stat label="Calls" testid="admin-calls">
            <span data-value={s.calls}>{num(s.calls)}</span>
          </Stat>
        </section>
        <section class="card">
          <Stat label="Active users" testid="admin-active-users">
            <span data-value={s.active_users}>{num(s.active_users)}</span>
          </Stat>
        </section>
        <section class="card">
          <Stat label="Error rate" testid="admin-error-rate" sub={`${num(s.errors_4xx)} 4xx, ${num(s.errors_5xx)} 5xx`}>
            {pct(s.error_rate)}
          </Stat>
        </section>
      </div>
      <div class="two">
        <SortTable
          testid="calls-by-plan"
          caption="Calls per plan"
          columns={[
            { key: 'plan', label: 'Plan' },
            { key: 'calls', label: 'Calls', num: true, render: (r) => num(r.calls) },
            { key: 'share', label: 'Share', num: true, value: (r) => r.calls, render: (r) => pct(s.calls ? r.calls / s.calls : 0) },
          ]}
          rows={plans}
          rowKey={(r) => r.plan}
          sort={{ key: 'calls', dir: 'descending' }}
        />
        <SortTable
          testid="overage-totals"
          caption="Overage of periods starting in the range"
          columns={[
            { key: 'currency', label: 'Currency', render: (r) => r.currency.toUpperCase() },
            { key: 'billed', label: 'Billed', num: true, render: (r) => money(r.billed, r.currency) },
            { key: 'pending', label: 'Pending', num: true, render: (r) => money(r.pending, r.currency) },
          ]}
          rows={s.overage || []}
          rowKey={(r) => r.currency}
          empty="No overage in this range."
        />
      </div>
    </div>
  );
}

function Overview({ open }) {
  const id = useId();
  const [range, setRange] = useState(lastDays(30));
  const [by, setBy] = useState('calls');
  const [limit, setLimit] = useState(10);
  const summary = useLoad(() => request('/v1/admin/summary' + query(range)), [range]);
  const top = useLoad(() => request('/v1/admin/top-users' + query({ ...range, by, limit })), [range, by, limit]);
  const rows = (top.data?.items || []).map((u, i) => ({ ...u, rank: i + 1 }));
  const cols = [
    { key: 'rank', label: '#', num: true },
    { key: 'user_id', label: 'User', render: (u) => <UserButton id={u.user_id} open={open} /> },
    { key: 'plan_id', label: 'Plan' },
    { key: 'calls', label: 'Calls', num: true, render: (u) => num(u.calls) },
    { key: 'errors_4xx', label: '4xx', num: true, render: (u) => num(u.errors_4xx) },
    { key: 'errors_5xx', label: '5xx', num: true, render: (u) => num(u.errors_5xx) },
  ];
  // By overage the ranking is per currency, ordered by currency, and a
  // user billed in two currencies appears in each.
  if (by === 'overage') cols.push({ key: 'overage', label: 'Overage', num: true, render: (u) => money(u.overage, u.currency) });
  return (
    <div>
      <div class="section-head">
        <h2>System totals</h2>
        <RangePicker value={range} onApply={setRange} />
      </div>
      <ErrorNote error={summary.error} />
      {summary.data ? <SystemSummary s={summary.data} /> : !summary.error && <Loading />}
      <section aria-labelledby={`${id}-top`}>
        <div class="section-head">
          <h3 id={`${id}-top`}>Top users</h3>
          <label for={`${id}-by`}>By</label>
          <select id={`${id}-by`} value={by} onChange={(e) => setBy(e.currentTarget.value)}>
            <option value="calls">calls</option>
            <option value="errors">errors</option>
            <option value="overage">overage</option>
          </select>
          <label for={`${id}-limit`}>Show</label>
          <select id={`${id}-limit`} value={limit} onChange={(e) => setLimit(Number(e.currentTarget.value))}>
            {[10, 25, 50, 100].map((n) => (
              <option value={n}>{n}</option>
            ))}
          </select>
        </div>
        <ErrorNote error={top.error} />
        {top.data ? <SortTable key={by} testid="top-users" columns={cols} rows={rows} rowKey={(u) => u.user_id + ' ' + (u.currency || '')} sort={{ key: 'rank', dir: 'ascending' }} /> : !top.error && <Loading />}
      </section>
    </div>
  );
}

const PLANS = [
  ['free', 'Free'],
  ['pro', 'Pro'],
  ['enterprise', 'Enterprise'],
];

// The numeric overrides: [field, label, integer?, minimum].
const OVERRIDES = [
  ['included_calls', 'Included calls', true, 0],
  ['rate_per_second', 'Rate (calls/s)', false, 0],
  ['burst', 'Burst', true, 1],
  ['overage_unit_size', 'Overage unit (calls)', true, 1],
  ['overage_unit_price', 'Unit price (minor units)', true, 0],
];

// changeMessage says what a plan change did: its kind, when it takes
// effect, and what changed between the terms before and after.
function changeMessage(r, plan) {
  if (r?.message) return r.message;
  if (r?.change || r?.effective_at) {
    const when = r.effective_at ? `takes effect ${dateTime(r.effective_at)}` : 'takes effect now';
    const changed = r.changed?.length ? ` Changed: ${r.changed.join(', ')}.` : '';
    return `Plan change${r.change ? ` (${r.change})` : ''} saved: it ${when}.${changed}`;
  }
  return `Saved: the user is on ${r?.effective?.name || r?.plan_id || plan}.`;
}

function PlanForm({ userId, current, onChanged }) {
  const id = useId();
  const [plan, setPlan] = useState(current || 'pro');
  const [values, setValues] = useState({});
  const [hard, setHard] = useState('');
  const [state, setState] = useState({});
  useEffect(() => {
    if (current) setPlan(current);
  }, [current]);

  const submit = async (e) => {
    e.preventDefault();
    const overrides = {};
    for (const [field, label, integer, min] of OVERRIDES) {
      const text = (values[field] || '').trim();
      if (!text) continue;
      const n = Number(text);
      const bad = !Number.isFinite(n) || n < min || (integer && !Number.isInteger(n)) || (field === 'rate_per_second' && n <= 0);
      if (bad) return setState({ error: `${label}: enter ${integer ? 'a whole number' : 'a number'} of at least ${field === 'rate_per_second' ? 'more than 0' : min}.` });
      overrides[field] = n;
    }
    if (hard) overrides.hard_limit = hard === 'hard';
    setState({ busy: true });
    try {
      // PATCH: the overrides left empty keep the user's current values
      // (a negotiated allowance survives a new rate limit).
      const r = await request(`/v1/admin/users/${userId}/plan`, { method: 'PATCH', body: { plan_id: plan, overrides } });
      setState({ done: changeMessage(r, plan) });
      onChanged();
    } catch (err) {
      setState({ error: errorText(err) });
    }
  };

  return (
    <form class="card form" data-testid="plan-form" onSubmit={submit} aria-labelledby={`${id}-h`}>
      <h3 id={`${id}-h`}>Change plan</h3>
      <div class="field">
        <label for={`${id}-plan`}>Plan</label>
        <select id={`${id}-plan`} data-testid="plan-select" value={plan} onChange={(e) => setPlan(e.currentTarget.value)}>
          {PLANS.map(([v, label]) => (
            <option value={v}>{label}</option>
          ))}
        </select>
      </div>
      <fieldset>
        <legend>Overrides (empty keeps the user's current value)</legend>
        <div class="grid">
          {OVERRIDES.map(([field, label, integer, min]) => (
            <div class="field">
              <label for={`${id}-${field}`}>{label}</label>
              <input
                id={`${id}-${field}`}
                type="number"
                inputMode={integer ? 'numeric' : 'decimal'}
                min={min}
                step={integer ? 1 : 'any'}
                value={values[field] || ''}
                onInput={(e) => setValues({ ...values, [field]: e.currentTarget.value })}
              />
            </div>
          ))}
          <div class="field">
            <label for={`${id}-hard`}>Limit</label>
            <select id={`${id}-hard`} value={hard} onChange={(e) => setHard(e.currentTarget.value)}>
              <option value="">The plan's</option>
              <option value="hard">Hard: refuse past the quota</option>
              <option value="soft">Soft: bill overage</option>
            </select>
          </div>
        </div>
      </fieldset>
      <button type="submit" data-testid="plan-submit" disabled={state.busy}>
        {state.busy ? 'Saving…' : 'Save plan'}
      </button>
      {state.done && (
        <p class="note ok" role="status" data-testid="plan-result">
          {state.done}
        </p>
      )}
      {state.error && (
        <p class="note error" role="alert" data-testid="error-message">
          {state.error}
        </p>
      )}
    </form>
  );
}

function parse(v) {
  if (typeof v !== 'string') return v;
  try {
    return JSON.parse(v);
  } catch {
    return v;
  }
}

function flatten(v, prefix = '', out = {}) {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    out[prefix || 'value'] = v;
    return out;
  }
  for (const [k, x] of Object.entries(v)) flatten(x, prefix ? `${prefix}.${k}` : k, out);
  return out;
}

const show = (v) => (v === undefined || v === null ? '—' : typeof v === 'object' ? JSON.stringify(v) : String(v));

function Changes({ old, now }) {
  const a = flatten(parse(old) ?? {});
  const b = flatten(parse(now) ?? {});
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
  if (!keys.length) return <span class="muted">no change</span>;
  return (
    <ul class="changes">
      {keys.map((k) => (
        <li>
          <code>{k}</code>: {show(a[k])} → {show(b[k])}
        </li>
      ))}
    </ul>
  );
}

function Audit({ userId, version }) {
  const audit = useLoad(() => request(`/v1/admin/users/${userId}/audit`), [userId, version]);
  return (
    <section class="card" aria-label="Audit trail">
      <h3>Audit trail</h3>
      <ErrorNote error={audit.error} />
      {audit.data ? (
        <SortTable
          testid="audit-trail"
          columns={[
            { key: 'at', label: 'When', render: (r) => <When t={r.at} /> },
            { key: 'who', label: 'Who', render: (r) => <ShortID id={r.who} /> },
            { key: 'change', label: 'Change', nosort: true, render: (r) => <Changes old={r.old} now={r.new} /> },
          ]}
          rows={audit.data.items || []}
          rowKey={(r) => r.id}
          rowProps={(r) => ({ 'data-audit-id': r.id })}
          sort={{ key: 'at', dir: 'descending' }}
          empty="No plan changes recorded."
        />
      ) : (
        !audit.error && <Loading />
      )}
    </section>
  );
}

function Support({ userId, setUserId }) {
  const id = useId();
  const [text, setText] = useState(userId || '');
  const [problem, setProblem] = useState(null);
  const [version, setVersion] = useState(0);
  const [plan, setPlan] = useState(null);
  useEffect(() => {
    setText(userId || '');
  }, [userId]);
  const submit = (e) => {
    e.preventDefault();
    const v = text.trim();
    if (!UUID.test(v)) return setProblem('A user id is a UUID, such as 0b7c…-….');
    setProblem(null);
    setUserId(v);
  };
  return (
    <div>
      <form class="section-head" onSubmit={submit}>
        <h2>User support</h2>
        <label for={`${id}-user`}>User id</label>
        <input id={`${id}-user`} class="mono wide" value={text} spellcheck={false} autocomplete="off" onInput={(e) => setText(e.currentTarget.value)} />
        <button type="submit">Open</button>
        {problem && (
          <span class="field-error" role="alert">
            {problem}
          </span>
        )}
      </form>
      {!userId && <p class="muted">Open a user from the top users or the ledger, or enter their id.</p>}
      {userId && (
        <div key={userId}>
          <UsageView routes={userRoutes(userId)} title={`User ${userId}`} refresh={version} onSummary={(s) => setPlan(s?.plan_id)} />
          <div class="two">
            <PlanForm userId={userId} current={plan} onChanged={() => setVersion((v) => v + 1)} />
            <Audit userId={userId} version={version} />
          </div>
        </div>
      )}
    </div>
  );
}

function Rejected() {
  const list = usePaged((cursor) => '/v1/admin/rejected' + query({ limit: 50, cursor }), []);
  return (
    <div>
      <h2>Quarantined events</h2>
      <p class="muted small">Messages that could not be recorded, newest first, with the field at fault.</p>
      <ErrorNote error={list.error} />
      <SortTable
        testid="rejected-table"
        columns={[
          { key: 'rejected_at', label: 'Rejected', render: (r) => <When t={r.rejected_at} /> },
          { key: 'source', label: 'Source' },
          { key: 'event_id', label: 'Event', render: (r) => <span class="mono">{r.event_id || '—'}</span> },
          { key: 'field', label: 'Field', render: (r) => (r.field ? <code>{r.field}</code> : '—') },
          { key: 'reason', label: 'Reason' },
          {
            key: 'body',
            label: 'Body',
            nosort: true,
            render: (r) => (
              <details>
                <summary>show</summary>
                <pre>{r.body}</pre>
              </details>
            ),
          },
        ]}
        rows={list.items}
        rowKey={(r) => r.id}
        sort={{ key: 'rejected_at', dir: 'descending' }}
        empty={list.loading ? 'Loading…' : 'No quarantined events.'}
      />
      {list.next && (
        <button type="button" onClick={list.more} disabled={list.loading}>
          {list.loading ? 'Loading…' : 'More'}
        </button>
      )}
    </div>
  );
}

function RetryButton({ row, done }) {
  const [state, setState] = useState({});
  const retry = async () => {
    setState({ busy: true });
    try {
      await request(`/v1/admin/overage/${row.id}/retry`, { method: 'POST' });
      setState({});
      done();
    } catch (err) {
      setState({ error: errorText(err) });
    }
  };
  return (
    <span>
      <button type="button" class="small" onClick={retry} disabled={state.busy} aria-label={`Retry billing row ${row.id}`}>
        {state.busy ? 'Retrying…' : 'Retry'}
      </button>
      {state.error && (
        <span class="field-error" role="alert">
          {state.error}
        </span>
      )}
    </span>
  );
}

function Ledger({ open }) {
  const id = useId();
  const [month, setMonth] = useState(today().slice(0, 7));
  const [text, setText] = useState(month);
  const list = usePaged((cursor) => '/v1/admin/overage' + query({ period: month, limit: 100, cursor }), [month]);
  const submit = (e) => {
    e.preventDefault();
    if (/^\d{4}-\d{2}$/.test(text)) setMonth(text);
  };
  return (
    <div>
      <form class="section-head" onSubmit={submit}>
        <h2>Overage ledger</h2>
        <label for={`${id}-month`}>Periods starting in</label>
        <input id={`${id}-month`} type="month" value={text} pattern="\d{4}-\d{2}" placeholder="YYYY-MM" onInput={(e) => setText(e.currentTarget.value)} />
        <button type="submit">Show</button>
      </form>
      <ErrorNote error={list.error} />
      <SortTable
        testid="ledger-table"
        columns={[
          { key: 'user_id', label: 'User', render: (r) => <UserButton id={r.user_id} open={open} short /> },
          { key: 'period', label: 'Period (UTC)', cls: 'nowrap', value: (r) => r.period?.start, render: (r) => periodText(r.period) },
          { key: 'seq', label: 'Seq', num: true },
          { key: 'used_calls', label: 'Used of included', num: true, render: (r) => `${num(r.used_calls)} / ${num(r.included_calls)}` },
          { key: 'units', label: 'Units', num: true, render: (r) => num(r.units) },
          { key: 'amount', label: 'Amount', num: true, render: (r) => money(r.amount, r.currency) },
          { key: 'status', label: 'Status', render: (r) => <span class={`badge status-${r.status}`}>{r.status}</span> },
          { key: 'attempts', label: 'Attempts', num: true },
          { key: 'last_error', label: 'Last error', cls: 'wrap', render: (r) => r.last_error || '—' },
          { key: 'updated_at', label: 'Updated', render: (r) => <When t={r.updated_at} /> },
          { key: 'action', label: 'Action', nosort: true, render: (r) => r.status === 'failed' && <RetryButton row={r} done={list.reload} /> },
        ]}
        rows={list.items}
        rowKey={(r) => r.id}
        rowProps={(r) => ({ 'data-ledger-id': r.id, 'data-status': r.status })}
        sort={{ key: 'period', dir: 'ascending' }}
        empty={list.loading ? 'Loading…' : 'No ledger rows for periods starting in this month.'}
      />
      {list.next && (
        <button type="button" onClick={list.more} disabled={list.loading}>
          {list.loading ? 'Loading…' : 'More'}
        </button>
      )}
    </div>
  );
}

function Backfill() {
  const id = useId();
  const yesterday = addDays(today(), -1);
  const [from, setFrom] = useState(yesterday);
  const [to, setTo] = useState(yesterday);
  const [state, setState] = useState({});
  const submit = async (e) => {
    e.preventDefault();
    const p = rangeProblem({ from, to }) || (to > today() ? 'The last day must not be in the future.' : null);
    if (p) return setState({ error: p });
    setState({ busy: true });
    try {
      const r = await request('/v1/admin/aggregate', { method: 'POST', body: { from, to } });
      setState({ done: `Queued ${num(r.days_queued)} day${r.days_queued === 1 ? '' : 's'} (${from} to ${to}) for the next aggregate run.` });
    } catch (err) {
      setState({ error: errorText(err) });
    }
  };
  return (
    <form class="card form narrow" data-testid="backfill-form" onSubmit={submit} aria-labelledby={`${id}-h`}>
      <h2 id={`${id}-h`}>Backfill</h2>
      <p class="muted small">Mark days to be aggregated again, after late events or a fix. The next aggregate run recomputes them.</p>
      <div class="grid">
        <div class="field">
          <label for={`${id}-from`}>First day</label>
          <input id={`${id}-from`} type="date" value={from} max={today()} required onInput={(e) => setFrom(e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for={`${id}-to`}>Last day</label>
          <input id={`${id}-to`} type="date" value={to} max={today()} required onInput={(e) => setTo(e.currentTarget.value)} />
        </div>
      </div>
      <button type="submit" disabled={state.busy}>
        {state.busy ? 'Queuing…' : 'Queue days'}
      </button>
      {state.done && (
        <p class="note ok" role="status">
          {state.done}
        </p>
      )}
      {state.error && (
        <p class="note error" role="alert" data-testid="error-message">
          {state.error}
        </p>
      )}
    </form>
  );
}

const SECTIONS = [
  { id: 'overview', label: 'Overview' },
  { id: 'support', label: 'User support' },
  { id: 'rejected', label: 'Quarantine' },
  { id: 'ledger', label: 'Ledger' },
  { id: 'backfill', label: 'Backfill' },
  { id: 'notify', label: 'Alerts & webhooks' },
];

/** AdminView holds the admin sections, one tab each. */
export function AdminView() {
  const [section, setSection] = useState('overview');
  const [userId, setUserId] = useState(null);
  const open = (id) => {
    setUserId(id);
    setSection('support');
  };
  return (
    <div>
      <Tabs tabs={SECTIONS} active={section} onSelect={setSection} label="Admin sections" />
      <div {...tabPanelProps(section)}>
        {section === 'overview' && <Overview open={open} />}
        {section === 'support' && <Support userId={userId} setUserId={setUserId} />}
        {section === 'rejected' && <Rejected />}
        {section === 'ledger' && <Ledger open={open} />}
        {section === 'backfill' && <Backfill />}
        {section === 'notify' && <AlertsView base="/v1/admin" admin />}
      </div>
    </div>
  );
}
