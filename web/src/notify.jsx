// Usage alerts: threshold rules, webhook endpoints (the secret shown once,
// rotation), the delivery log with replay. base is '/v1' for a user's own,
// '/v1/admin' for everyone's.
import { useId, useState } from 'preact/hooks';
import { errorText, query, request } from './api.js';
import { dateTime, num } from './format.js';
import { ErrorNote, Loading, SortTable, useLoad, usePaged } from './ui.jsx';

const KINDS = [
  { id: 'percent', label: '% of included calls' },
  { id: 'calls', label: 'calls' },
  { id: 'overage', label: 'overage to date (cents)' },
  { id: 'quota', label: 'hard quota reached' },
];

const EVENT_TYPES = ['usage.threshold.reached', 'usage.overage.reached', 'usage.quota.reached', 'webhook.endpoint.disabled'];

function ruleText(r) {
  switch (r.kind) {
    case 'percent':
      return `${num(r.value)} % of the included calls`;
    case 'calls':
      return `${num(r.value)} calls`;
    case 'overage':
      return `${num(r.value)} (minor units) of overage`;
    default:
      return 'the hard quota reached';
  }
}

// useAction runs a call, tracking busy and its error, then done().
function useAction(done) {
  const [st, setSt] = useState({});
  const run = async (fn) => {
    setSt({ busy: true });
    try {
      const r = await fn();
      setSt({});
      done && done(r);
      return r;
    } catch (err) {
      setSt({ error: errorText(err) });
    }
  };
  return [st, run];
}

function Note({ st }) {
  return st.error ? (
    <p class="note error" role="alert" data-testid="error-message">
      {st.error}
    </p>
  ) : null;
}

function Rules({ base, admin }) {
  const id = useId();
  const rules = useLoad(() => request(`${base}/notify/rules`), [base]);
  const [kind, setKind] = useState('percent');
  const [value, setValue] = useState('90');
  const [owner, setOwner] = useState('');
  const [st, run] = useAction(() => rules.reload(true));
  const add = (e) => {
    e.preventDefault();
    const body = { kind, value: kind === 'quota' ? 0 : Number(value) };
    if (admin && owner) body[/^[0-9a-f-]{36}$/i.test(owner) ? 'user_id' : 'plan_id'] = owner.trim();
    run(() => request(`${base}/notify/rules`, { method: 'POST', body }));
  };
  const own = (r) => admin || !!r.user_id;
  const cols = [
    { key: 'scope', label: 'For', render: (r) => (r.plan_id ? `plan ${r.plan_id}` : admin ? <span class="mono">{r.user_id}</span> : 'you') },
    { key: 'value', label: 'When', num: false, render: ruleText },
    { key: 'event_type', label: 'Event', render: (r) => <code>{r.event_type}</code> },
    {
      key: 'enabled',
      label: 'Enabled',
      render: (r) =>
        own(r) ? (
          <input
            type="checkbox"
            checked={r.enabled}
            aria-label={`Rule ${ruleText(r)} enabled`}
            onChange={(e) => run(() => request(`${base}/notify/rules/${r.id}`, { method: 'PATCH', body: { enabled: e.currentTarget.checked } }))}
          />
        ) : r.enabled ? (
          'yes'
        ) : (
          'no'
        ),
    },
    {
      key: 'action',
      label: '',
      nosort: true,
      render: (r) =>
        own(r) && (
          <button type="button" class="small" onClick={() => run(() => request(`${base}/notify/rules/${r.id}`, { method: 'DELETE' }))}>
            Delete
          </button>
        ),
    },
  ];
  return (
    <section aria-labelledby={`${id}-h`}>
      <h3 id={`${id}-h`}>Alert rules</h3>
      <p class="muted small">Each rule raises its event once per billing period, when recorded usage reaches it.</p>
      <ErrorNote error={rules.error} />
      {rules.data ? (
        <SortTable
          testid="rules-table"
          columns={cols}
          rows={rules.data.items || []}
          rowKey={(r) => r.id}
          rowProps={(r) => ({ 'data-kind': r.kind, 'data-value': r.value })}
          empty="No rules."
        />
      ) : (
        !rules.error && <Loading />
      )}
      <form class="inline-form" data-testid="rule-form" onSubmit={add}>
        {admin && (
          <>
            <label for={`${id}-owner`}>Plan or user id</label>
            <input id={`${id}-owner`} value={owner} required placeholder="free, or a user id" onInput={(e) => setOwner(e.currentTarget.value)} />
          </>
        )}
        <label for={`${id}-kind`}>When</label>
        <select id={`${id}-kind`} value={kind} onChange={(e) => setKind(e.currentTarget.value)}>
          {KINDS.map((k) => (
            <option value={k.id}>{k.label}</option>
          ))}
        </select>
        {kind !== 'quota' && (
          <>
            <label for={`${id}-value`}>Value</label>
            <input id={`${id}-value`} type="number" min="1" required value={value} onInput={(e) => setValue(e.currentTarget.value)} />
          </>
        )}
        <button type="submit" disabled={st.busy}>
          Add rule
        </button>
      </form>
      <Note st={st} />
    </section>
  );
}

function Secret({ shown, onClose }) {
  if (!shown) return null;
  return (
    <div class="note ok" role="status" data-testid="endpoint-secret">
      <p>
        The signing secret of <span class="mono">{shown.url}</span>, shown this once: keep it where your receiver can read it.
      </p>
      <pre class="mono">{shown.secret}</pre>
      <button type="button" class="small" onClick={onClose}>
        Done
      </button>
    </div>
  );
}

function Endpoints({ base, admin, onLog }) {
  const id = useId();
  const list = useLoad(() => request(`${base}/webhooks/endpoints`), [base]);
  const [url, setUrl] = useState('');
  const [desc, setDesc] = useState('');
  const [types, setTypes] = useState([]);
  const [shown, setShown] = useState(null);
  const [st, run] = useAction((r) => {
    if (r?.secret) setShown(r);
    list.reload(true);
  });
  const add = (e) => {
    e.preventDefault();
    run(() => request(`${base}/webhooks/endpoints`, { method: 'POST', body: { url: url.trim(), description: desc, event_types: types } }));
  };
  const toggle = (t) => setTypes((ts) => (ts.includes(t) ? ts.filter((x) => x !== t) : [...ts, t]));
  const cols = [
    { key: 'url', label: 'URL', cls: 'wrap', render: (e) => <span class="mono">{e.url}</span> },
    admin && { key: 'user_id', label: 'Owner', render: (e) => (e.user_id ? <span class="mono">{e.user_id.slice(0, 8)}…</span> : 'platform') },
    { key: 'description', label: 'Description', cls: 'wrap' },
    { key: 'event_types', label: 'Events', cls: 'wrap', render: (e) => (e.event_types?.length ? e.event_types.join(', ') : 'all') },
    {
      key: 'enabled',
      label: 'State',
      render: (e) =>
        e.enabled ? (
          e.failing_since ? (
            <span class="badge status-failed">failing since {dateTime(e.failing_since)}</span>
          ) : (
            <span class="badge status-billed">enabled</span>
          )
        ) : (
          <span class="badge" title={e.disabled_reason || ''}>
            disabled
          </span>
        ),
    },
    {
      key: 'action',
      label: 'Actions',
      nosort: true,
      render: (e) => (
        <span class="nowrap">
          <button type="button" class="small" onClick={() => onLog(e.id)}>
            Log
          </button>{' '}
          <button type="button" class="small" onClick={() => run(() => request(`${base}/webhooks/endpoints/${e.id}`, { method: 'PATCH', body: { enabled: !e.enabled } }))}>
            {e.enabled ? 'Disable' : 'Enable'}
          </button>{' '}
          <button type="button" class="small" aria-label={`Rotate the secret of ${e.url}`} onClick={() => run(() => request(`${base}/webhooks/endpoints/${e.id}/rotate`, { method: 'POST' }))}>
            Rotate secret
          </button>{' '}
          <button type="button" class="small" onClick={() => run(() => request(`${base}/webhooks/endpoints/${e.id}`, { method: 'DELETE' }))}>
            Delete
          </button>
        </span>
      ),
    },
  ].filter(Boolean);
  return (
    <section aria-labelledby={`${id}-h`}>
      <h3 id={`${id}-h`}>Webhook endpoints</h3>
      <p class="muted small">
        Signed as Standard Webhooks specifies (webhook-id, webhook-timestamp, webhook-signature). After a rotation both secrets sign for a day.
      </p>
      <Secret shown={shown} onClose={() => setShown(null)} />
      <ErrorNote error={list.error} />
      {list.data ? (
        <SortTable testid="endpoints-hooks-table" columns={cols} rows={list.data.items || []} rowKey={(e) => e.id} empty="No endpoints." />
      ) : (
        !list.error && <Loading />
      )}
      <form class="inline-form" data-testid="endpoint-form" onSubmit={add}>
        <label for={`${id}-url`}>URL</label>
        <input id={`${id}-url`} type="url" required placeholder="your receiver, https and a public host" value={url} onInput={(e) => setUrl(e.currentTarget.value)} />
        <label for={`${id}-desc`}>Description</label>
        <input id={`${id}-desc`} value={desc} onInput={(e) => setDesc(e.currentTarget.value)} />
        <fieldset>
          <legend class="small">Events (none: all)</legend>
          {EVENT_TYPES.map((t) => (
            <label class="small nowrap">
              <input type="checkbox" checked={types.includes(t)} onChange={() => toggle(t)} /> {t}
            </label>
          ))}
        </fieldset>
        <button type="submit" disabled={st.busy}>
          Add endpoint
        </button>
      </form>
      <Note st={st} />
    </section>
  );
}

function Attempts({ log }) {
  if (!log?.length) return '—';
  return (
    <details>
      <summary>{log.length}</summary>
      <ol class="small">
        {log.map((a) => (
          <li>
            {dateTime(a.at)}: {a.outcome}
            {a.status_code ? ` ${a.status_code}` : ''} in {num(a.latency_ms)} ms{a.replay ? ' (replay)' : ''}
            {a.answer ? <pre>{a.answer}</pre> : null}
          </li>
        ))}
      </ol>
    </details>
  );
}

function Deliveries({ base, endpointId, setEndpointId }) {
  const id = useId();
  const [status, setStatus] = useState('');
  const [since, setSince] = useState('');
  const list = usePaged((cursor) => `${base}/webhooks/deliveries` + query({ endpoint_id: endpointId, status, limit: 50, cursor }), [base, endpointId, status]);
  const [done, setDone] = useState('');
  const [st, run] = useAction((r) => {
    if (r?.replayed != null) setDone(`Replayed ${num(r.replayed)} deliver${r.replayed === 1 ? 'y' : 'ies'}.`);
    list.reload();
  });
  const replayOne = (d) => run(() => request(`${base}/webhooks/replay`, { method: 'POST', body: { delivery_id: d.id } }));
  const replaySince = (e) => {
    e.preventDefault();
    run(() => request(`${base}/webhooks/replay`, { method: 'POST', body: { endpoint_id: endpointId, since: new Date(since).toISOString() } }));
  };
  const cols = [
    { key: 'created_at', label: 'Created', render: (d) => dateTime(d.created_at) },
    { key: 'event_type', label: 'Event', render: (d) => <code>{d.event_type}</code> },
    { key: 'endpoint_id', label: 'Endpoint', render: (d) => <span class="mono">{d.endpoint_id.slice(0, 8)}…</span> },
    { key: 'status', label: 'Status', render: (d) => <span class={`badge status-${d.status}`}>{d.status}</span> },
    { key: 'last_status', label: 'Answer', render: (d) => (d.last_status ? d.last_status : d.last_error || '—') },
    { key: 'attempts', label: 'Attempts', render: (d) => <Attempts log={d.attempts_log} /> },
    { key: 'next_attempt_at', label: 'Next attempt', render: (d) => (d.next_attempt_at ? dateTime(d.next_attempt_at) : '—') },
    {
      key: 'action',
      label: '',
      nosort: true,
      render: (d) =>
        d.status !== 'pending' && (
          <button type="button" class="small" aria-label={`Replay delivery ${d.id}`} onClick={() => replayOne(d)}>
            Replay
          </button>
        ),
    },
  ];
  return (
    <section aria-labelledby={`${id}-h`}>
      <div class="section-head">
        <h3 id={`${id}-h`}>Deliveries</h3>
        {endpointId && (
          <button type="button" class="link small" onClick={() => setEndpointId(null)}>
            all endpoints
          </button>
        )}
        <label for={`${id}-status`}>Status</label>
        <select id={`${id}-status`} value={status} onChange={(e) => setStatus(e.currentTarget.value)}>
          {['', 'pending', 'delivered', 'failed', 'refused'].map((s) => (
            <option value={s}>{s || 'any'}</option>
          ))}
        </select>
      </div>
      <ErrorNote error={list.error} />
      <SortTable
        testid="deliveries-table"
        columns={cols}
        rows={list.items}
        rowKey={(d) => d.id}
        rowProps={(d) => ({ 'data-delivery-id': d.id, 'data-status': d.status })}
        empty={list.loading ? 'Loading…' : 'No deliveries.'} />
      {list.next && (
        <button type="button" onClick={list.more} disabled={list.loading}>
          More
        </button>
      )}
      {endpointId && (
        <form class="inline-form" data-testid="replay-form" onSubmit={replaySince}>
          <label for={`${id}-since`}>Replay this endpoint's failed deliveries since</label>
          <input id={`${id}-since`} type="datetime-local" required value={since} onInput={(e) => setSince(e.currentTarget.value)} />
          <button type="submit" disabled={st.busy}>
            Replay
          </button>
        </form>
      )}
      {done && (
        <p class="note ok" role="status">
          {done}
        </p>
      )}
      <Note st={st} />
    </section>
  );
}

/** AlertsView: rules, endpoints and deliveries of base ('/v1' or '/v1/admin'). */
export function AlertsView({ base = '/v1', admin = false }) {
  const [endpointId, setEndpointId] = useState(null);
  return (
    <div data-testid="alerts-view">
      <Rules base={base} admin={admin} />
      <Endpoints base={base} admin={admin} onLog={setEndpointId} />
      <Deliveries base={base} endpointId={endpointId} setEndpointId={setEndpointId} />
    </div>
  );
}
