// The usage view: what a user sees of their own account, and what an admin
// sees of a user's account for support (same view, other routes).
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { download, errorText, query, request } from './api.js';
import { DailyChart } from './chart.jsx';
import { bytes, dateTime, dec, money, num, pct, periodText, today } from './format.js';
import { ErrorNote, Loading, RangePicker, SortTable, Stat, lastDays, useLoad } from './ui.jsx';

/** REFRESH_MS is how often the live numbers refresh while the tab is visible. */
const REFRESH_MS = 10000;

/** ownRoutes are the caller's own routes; userRoutes an admin's view of a user. */
export const ownRoutes = {
  summary: '/v1/usage',
  daily: '/v1/usage/daily',
  endpoints: '/v1/usage/endpoints',
  keys: '/v1/usage/keys',
  export: '/v1/usage/export',
};

export function userRoutes(id) {
  const base = `/v1/admin/users/${encodeURIComponent(id)}`;
  return { summary: `${base}/usage`, daily: `${base}/daily`, endpoints: `${base}/endpoints`, keys: `${base}/keys` };
}

let numbersMarked = false;

/** markDrawn records performance mark numbers-drawn once per page load. */
function markDrawn() {
  if (numbersMarked) return;
  numbersMarked = true;
  performance.mark('numbers-drawn');
}

function Quota({ s }) {
  const used = s.used ?? 0;
  const included = s.included ?? 0;
  const ratio = included > 0 ? used / included : used > 0 ? 1 : 0;
  const reached = included > 0 ? used >= included : used > 0;
  const level = ratio >= 1 ? 'over' : ratio >= 0.8 ? 'high' : 'ok';
  return (
    <section class="card" aria-labelledby="quota-h">
      <h3 id="quota-h">
        Quota <span class={`badge ${s.hard_limit ? 'hard' : 'soft'}`}>{s.hard_limit ? 'Hard limit' : 'Soft limit'}</span>
      </h3>
      <p class="quota-figures">
        <span class="big" data-testid="quota-used" data-value={used}>
          {num(used)}
        </span>{' '}
        of{' '}
        <span data-testid="quota-included" data-value={included}>
          {num(included)}
        </span>{' '}
        calls ({pct(ratio)})
      </p>
      <div class={`gauge ${level}`} aria-hidden="true">
        <div class="gauge-fill" style={{ width: `${Math.min(100, ratio * 100).toFixed(1)}%` }} />
      </div>
      <p class="stat-sub">
        {s.hard_limit
          ? reached
            ? 'The quota is used up: calls are refused until the period renews.'
            : `${num(s.remaining ?? Math.max(0, included - used))} calls left; past the quota, calls are refused.`
          : reached
            ? 'Past the included calls: the extra calls are billed as overage.'
            : `${num(s.remaining ?? Math.max(0, included - used))} calls left; past the quota, calls go on and are billed as overage.`}
      </p>
    </section>
  );
}

// toDateText says what the overage so far is made of: the billable calls.
function toDateText(c) {
  return c?.billable_calls != null ? `${num(c.billable_calls)} calls above the included` : null;
}

function Summary({ s }) {
  const toDate = s.overage_to_date;
  const projected = s.projected;
  const projectedCalls = projected?.used_calls;
  return (
    <div class="cards">
      <section class="card" aria-labelledby="plan-h">
        <h3 id="plan-h">Subscription</h3>
        <Stat label="Plan" testid="plan-name">
          {s.plan_name || s.plan_id || '—'}
        </Stat>
        <Stat label="Billing period (UTC)" sub={s.period?.end && `Renews ${dateTime(s.period.end)}`}>
          <span class="nowrap" data-testid="period">
            {periodText(s.period)}
          </span>
        </Stat>
      </section>
      <Quota s={s} />
      <section class="card" aria-labelledby="overage-h">
        <h3 id="overage-h">Overage</h3>
        <Stat
          label="To date"
          testid="overage-to-date"
          sub={toDateText(toDate)}
        >
          {toDate ? money(toDate.amount, toDate.currency) : '—'}
        </Stat>
        <Stat
          label="Projected at period end"
          testid="overage-projected"
          sub={projected ? projectedCalls != null && `at ${num(projectedCalls)} calls` : 'Not given by the service yet'}
        >
          {projected ? money(projected.amount, projected.currency ?? toDate?.currency) : '—'}
        </Stat>
      </section>
      <section class="card" aria-labelledby="rate-h">
        <h3 id="rate-h">Rate limit</h3>
        <Stat label="Sustained, burst" testid="rate-limit">
          {s.rate_limit ? `${dec(s.rate_limit.rate_per_second)} calls/s, burst ${num(s.rate_limit.burst)}` : '—'}
        </Stat>
        <p class="stat-sub">Live counters last moved: {s.last_updated ? dateTime(s.last_updated) : 'not in this period'}</p>
      </section>
    </div>
  );
}

const DAY_COLS = [
  ['calls', 'Calls'],
  ['errors_4xx', '4xx'],
  ['errors_5xx', '5xx'],
];

function DailyTable({ days }) {
  const total = (k) => days.reduce((n, d) => n + (d[k] || 0), 0);
  const rows = [...days].reverse();
  return (
    <div class="table-wrap scroll" tabIndex={0} role="region" aria-label="Daily numbers">
      <table data-testid="daily-table">
        <caption>Daily numbers, newest first (UTC)</caption>
        <thead>
          <tr>
            <th scope="col">Day</th>
            {DAY_COLS.map(([, label]) => (
              <th scope="col" class="num">
                {label}
              </th>
            ))}
            <th scope="col" class="num">
              Request bytes
            </th>
            <th scope="col" class="num">
              Response bytes
            </th>
            <th scope="col" class="num">
              p95 latency
            </th>
          </tr>
        </thead>
        <tbody>
          {rows.map((d) => (
            <tr key={d.day} data-day={d.day}>
              <th scope="row">
                {d.day}
                {d.live && <span class="badge live">live</span>}
              </th>
              {DAY_COLS.map(([k]) => (
                <td class="num" data-col={k} data-value={d[k]}>
                  {num(d[k])}
                </td>
              ))}
              <td class="num">{bytes(d.request_bytes)}</td>
              <td class="num">{bytes(d.response_bytes)}</td>
              <td class="num">{d.p95_latency_ms == null ? '—' : `${num(d.p95_latency_ms)} ms`}</td>
            </tr>
          ))}
        </tbody>
        <tfoot>
          <tr>
            <th scope="row">Total</th>
            {DAY_COLS.map(([k]) => (
              <td class="num">{num(total(k))}</td>
            ))}
            <td class="num">{bytes(total('request_bytes'))}</td>
            <td class="num">{bytes(total('response_bytes'))}</td>
            <td />
          </tr>
        </tfoot>
      </table>
    </div>
  );
}

const numbers = [
  { key: 'calls', label: 'Calls', num: true, render: (r) => num(r.calls) },
  { key: 'errors_4xx', label: '4xx', num: true, render: (r) => num(r.errors_4xx) },
  { key: 'errors_5xx', label: '5xx', num: true, render: (r) => num(r.errors_5xx) },
  { key: 'request_bytes', label: 'Request bytes', num: true, render: (r) => bytes(r.request_bytes) },
  { key: 'response_bytes', label: 'Response bytes', num: true, render: (r) => bytes(r.response_bytes) },
  { key: 'avg_latency_ms', label: 'Avg latency', num: true, render: (r) => `${dec(r.avg_latency_ms)} ms` },
  { key: 'max_latency_ms', label: 'Max latency', num: true, render: (r) => `${num(r.max_latency_ms)} ms` },
];

const endpointCols = [{ key: 'endpoint', label: 'Endpoint', render: (r) => <code>{r.endpoint}</code> }, ...numbers];

const keyName = (r) => (r.api_key_id ? r.key_name || r.key_prefix || r.api_key_id : null);
const keyCols = [
  {
    key: 'key',
    label: 'API key',
    value: (r) => keyName(r) ?? '',
    render: (r) =>
      r.api_key_id ? (
        <span>
          {r.key_name || 'unnamed'} {r.key_prefix && <code>{r.key_prefix}…</code>}
        </span>
      ) : (
        <span class="muted">no key</span>
      ),
  },
  ...numbers,
];

function Bills({ billed }) {
  return (
    <section aria-labelledby="bills-h">
      <h3 id="bills-h">Your bills</h3>
      <SortTable
        testid="bills-table"
        columns={[
          { key: 'period', label: 'Period (UTC)', cls: 'nowrap', value: (b) => b.period?.start, render: (b) => periodText(b.period) },
          { key: 'amount', label: 'Amount', num: true, render: (b) => money(b.amount, b.currency) },
          { key: 'status', label: 'Status', render: (b) => <span class={`badge status-${b.status}`}>{b.status}</span> },
        ]}
        rows={billed}
        rowKey={(b) => b.period?.start}
        rowProps={(b) => ({ 'data-period-start': b.period?.start, 'data-status': b.status })}
        sort={{ key: 'period', dir: 'descending' }}
        empty="No earlier period has been billed."
      />
    </section>
  );
}

function CSVButton({ path, range }) {
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState(null);
  const click = async () => {
    setBusy(true);
    setErr(null);
    try {
      await download(path + query({ ...range, format: 'csv' }), `usage-${range.from}-${range.to}.csv`, 'text/csv');
    } catch (e) {
      setErr(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <span>
      <button type="button" data-testid="csv-download" onClick={click} disabled={busy}>
        {busy ? 'Preparing CSV…' : 'Download CSV'}
      </button>
      {err && (
        <span class="field-error" role="alert">
          {errorText(err)}
        </span>
      )}
    </span>
  );
}

/**
 * UsageView shows one account's period summary, daily chart and table,
 * breakdowns, export and bills, from routes (ownRoutes or userRoutes(id)).
 * refresh, when it changes, reloads the summary; onSummary receives it.
 */
export function UsageView({ routes, title, refresh, onSummary }) {
  const [range, setRange] = useState(lastDays(30));
  const summary = useLoad(() => request(routes.summary), [routes.summary]);
  const daily = useLoad(() => request(routes.daily + query(range)), [routes.daily, range]);
  const endpoints = useLoad(() => request(routes.endpoints + query({ ...range, limit: 1000 })), [routes.endpoints, range]);
  const keys = useLoad(() => request(routes.keys + query({ ...range, limit: 1000 })), [routes.keys, range]);

  // Today's numbers move: refresh the summary, and the daily rows when the
  // range reaches today, every 10 s while the tab is visible.
  const live = range.to >= today();
  const refs = useRef({});
  refs.current = { summary, daily, live };
  useEffect(() => {
    const tick = () => {
      if (document.visibilityState !== 'visible') return;
      refs.current.summary.reload(true);
      if (refs.current.live) refs.current.daily.reload(true);
    };
    const timer = setInterval(tick, REFRESH_MS);
    document.addEventListener('visibilitychange', tick);
    return () => {
      clearInterval(timer);
      document.removeEventListener('visibilitychange', tick);
    };
  }, []);

  // refresh changes after an admin's plan change: read the summary again.
  useEffect(() => {
    if (refresh) summary.reload(true);
  }, [refresh]);
  useEffect(() => {
    onSummary?.(summary.data);
  }, [summary.data]);

  const drawn = useRef({ summary: false, chart: false });
  useEffect(() => {
    if (summary.data) drawn.current.summary = true;
    if (drawn.current.summary && drawn.current.chart) markDrawn();
  }, [summary.data]);
  const chartDrawn = () => {
    drawn.current.chart = true;
    if (drawn.current.summary) markDrawn();
  };

  const days = daily.data?.days;
  const chartLabel = useMemo(() => {
    if (!days?.length) return 'Daily chart';
    const sum = (k) => num(days.reduce((n, d) => n + d[k], 0));
    return `Daily calls and errors from ${range.from} to ${range.to}: ${sum('calls')} calls, ${sum('errors_4xx')} 4xx and ${sum('errors_5xx')} 5xx in all. The table below lists each day.`;
  }, [days]);

  return (
    <div class="usage">
      {title && <h2>{title}</h2>}
      <ErrorNote error={summary.error} />
      {summary.data ? <Summary s={summary.data} /> : !summary.error && <Loading />}

      <section aria-labelledby="daily-h">
        <div class="section-head">
          <h3 id="daily-h">Daily usage</h3>
          <RangePicker value={range} onApply={setRange} />
          {routes.export && <CSVButton path={routes.export} range={range} />}
        </div>
        <ErrorNote error={daily.error} />
        {days ? (
          <div class="daily">
            <DailyChart days={days} label={chartLabel} onDrawn={chartDrawn} />
            <DailyTable days={days} />
          </div>
        ) : (
          !daily.error && <Loading />
        )}
      </section>

      <section aria-labelledby="endpoints-h">
        <h3 id="endpoints-h">Endpoints</h3>
        <p class="muted small">From the daily rollup: today's calls show after the next aggregation.</p>
        <ErrorNote error={endpoints.error} />
        {endpoints.data ? (
          <SortTable testid="endpoints-table" columns={endpointCols} rows={endpoints.data.items || []} rowKey={(r) => r.endpoint} sort={{ key: 'calls', dir: 'descending' }} />
        ) : (
          !endpoints.error && <Loading />
        )}
      </section>

      <section aria-labelledby="keys-h">
        <h3 id="keys-h">API keys</h3>
        <ErrorNote error={keys.error} />
        {keys.data ? (
          <SortTable testid="keys-table" columns={keyCols} rows={keys.data.items || []} rowKey={(r) => r.api_key_id || ''} sort={{ key: 'calls', dir: 'descending' }} />
        ) : (
          !keys.error && <Loading />
        )}
      </section>

      {Array.isArray(summary.data?.billed) && <Bills billed={summary.data.billed} />}
    </div>
  );
}
