// Small shared pieces: loading state, tabs, sortable tables, the range
// picker and messages.
import { useCallback, useEffect, useId, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, errorText, request } from './api.js';
import { addDays, daysBetween, today } from './format.js';

// The page's state for tests and scripts: body[data-state] is "loading"
// while a first load is under way, "error" while an error is shown and
// "ready" otherwise.
const busy = new Set();
const failed = new Set();

function syncState() {
  document.body.dataset.state = failed.size ? 'error' : busy.size ? 'loading' : 'ready';
}

/** track records one source's state (loading, error, or null for none). */
export function track(key, state) {
  busy.delete(key);
  failed.delete(key);
  if (state === 'loading') busy.add(key);
  if (state === 'error') failed.add(key);
  syncState();
}

/**
 * useLoad runs fn when deps change and returns {data, error, loading,
 * reload}. reload(true) refreshes in the background: the data on screen
 * stays, and the page does not go back to "loading".
 */
export function useLoad(fn, deps) {
  const key = useMemo(() => ({}), []);
  const seq = useRef(0);
  const [st, setSt] = useState({ loading: true, data: undefined, error: null });
  const reload = useCallback((background = false) => {
    const my = ++seq.current;
    if (!background) {
      setSt((s) => ({ ...s, loading: true }));
      track(key, 'loading');
    }
    return fn().then(
      (data) => {
        if (my !== seq.current) return;
        setSt({ loading: false, data, error: null });
        track(key, null);
      },
      (error) => {
        if (my !== seq.current) return;
        setSt((s) => ({ loading: false, data: background ? s.data : undefined, error }));
        track(key, 'error');
      },
    );
  }, deps);
  useEffect(() => {
    reload(false);
  }, [reload]);
  useEffect(
    () => () => {
      seq.current++;
      track(key, null);
    },
    [],
  );
  return { ...st, reload };
}

/**
 * usePaged loads a cursor-paged list: path(cursor) is the URL of a page.
 * more() appends the next page; reload() starts again from the first.
 */
export function usePaged(path, deps) {
  const key = useMemo(() => ({}), []);
  const seq = useRef(0);
  const [st, setSt] = useState({ items: [], next: null, error: null, loading: true });
  const load = useCallback((cursor) => {
    const my = ++seq.current;
    setSt((s) => ({ ...s, loading: true }));
    track(key, 'loading');
    return request(path(cursor)).then(
      (r) => {
        if (my !== seq.current) return;
        setSt((s) => ({ items: cursor ? [...s.items, ...(r.items || [])] : r.items || [], next: r.next_cursor || null, error: null, loading: false }));
        track(key, null);
      },
      (error) => {
        if (my !== seq.current) return;
        setSt((s) => ({ ...s, error, loading: false }));
        track(key, 'error');
      },
    );
  }, deps);
  useEffect(() => {
    setSt({ items: [], next: null, error: null, loading: true });
    load(null);
  }, [load]);
  useEffect(
    () => () => {
      seq.current++;
      track(key, null);
    },
    [],
  );
  return { ...st, more: () => load(st.next), reload: () => load(null) };
}

/** ErrorNote shows a failed call's problem, or nothing. */
export function ErrorNote({ error }) {
  if (!error) return null;
  const title = error instanceof ApiError && error.status >= 400 && ![401, 403].includes(error.status) && error.title;
  return (
    <div class="note error" role="alert" data-testid="error-message">
      {title && <strong>{title}: </strong>}
      {errorText(error)}
    </div>
  );
}

/** Loading shows a quiet placeholder while a section has no data yet. */
export function Loading({ what = 'Loading…' }) {
  return (
    <p class="muted" aria-live="polite">
      {what}
    </p>
  );
}

/**
 * Tabs renders a tablist of buttons: click, or the arrow keys, Home and End
 * once focused, select a tab. Panels use tabPanelProps(id).
 */
export function Tabs({ tabs, active, onSelect, label }) {
  const refs = useRef({});
  const keydown = (e) => {
    const i = tabs.findIndex((t) => t.id === active);
    const to = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[e.key];
    if (to === undefined) return;
    e.preventDefault();
    const next = tabs[(to + tabs.length) % tabs.length];
    onSelect(next.id);
    refs.current[next.id]?.focus();
  };
  return (
    <div class="tabs" role="tablist" aria-label={label} onKeyDown={keydown}>
      {tabs.map((t) => (
        <button
          type="button"
          role="tab"
          id={`tab-${t.id}`}
          aria-controls={t.id === active ? `panel-${t.id}` : undefined}
          aria-selected={t.id === active ? 'true' : 'false'}
          tabIndex={t.id === active ? 0 : -1}
          data-testid={t.testid}
          ref={(el) => {
            refs.current[t.id] = el;
          }}
          onClick={() => onSelect(t.id)}
        >
          {t.label}
        </button>
      ))}
    </div>
  );
}

/** tabPanelProps are the attributes of the panel of tab id. */
export function tabPanelProps(id) {
  return { role: 'tabpanel', id: `panel-${id}`, 'aria-labelledby': `tab-${id}`, tabIndex: 0, class: 'panel' };
}

function compare(a, b) {
  if (a == null) return b == null ? 0 : 1;
  if (b == null) return -1;
  return typeof a === 'number' && typeof b === 'number' ? a - b : String(a).localeCompare(String(b));
}

/**
 * SortTable renders rows under columns [{key, label, num, cls, nosort, value,
 * render}]: value(row) is what sorts (default row[key]), render(row) what
 * shows, cls a class for the cells.
 * Each header is a button; aria-sort tells the order.
 */
export function SortTable({ columns, rows, rowKey, sort: initial, testid, caption, empty = 'Nothing in this range.', rowProps }) {
  const [sort, setSort] = useState(initial || { key: columns[0].key, dir: 'ascending' });
  const sorted = useMemo(() => {
    const col = columns.find((c) => c.key === sort.key);
    const value = col?.value || ((r) => r[sort.key]);
    const out = [...rows].sort((a, b) => compare(value(a), value(b)));
    return sort.dir === 'descending' ? out.reverse() : out;
  }, [rows, sort]);
  const by = (c) =>
    setSort((s) => ({
      key: c.key,
      dir: s.key === c.key ? (s.dir === 'ascending' ? 'descending' : 'ascending') : c.num ? 'descending' : 'ascending',
    }));
  return (
    <div class="table-wrap">
      <table data-testid={testid}>
        {caption && <caption>{caption}</caption>}
        <thead>
          <tr>
            {columns.map((c) => (
              <th scope="col" class={c.num ? 'num' : undefined} aria-sort={c.nosort ? undefined : sort.key === c.key ? sort.dir : 'none'}>
                {c.nosort ? (
                  c.label
                ) : (
                  <button type="button" class="sort" onClick={() => by(c)}>
                    {c.label}
                    <span class="arrow" aria-hidden="true">
                      {sort.key === c.key ? (sort.dir === 'ascending' ? '▲' : '▼') : ''}
                    </span>
                  </button>
                )}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {sorted.length === 0 && (
            <tr>
              <td colSpan={columns.length} class="muted">
                {empty}
              </td>
            </tr>
          )}
          {sorted.map((r) => (
            <tr key={rowKey(r)} {...(rowProps ? rowProps(r) : {})}>
              {columns.map((c) => (
                <td class={[c.num && 'num', c.cls].filter(Boolean).join(' ') || undefined} data-col={c.key}>
                  {c.render ? c.render(r) : r[c.key]}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** MAX_DAYS is the longest range the API accepts. */
export const MAX_DAYS = 366;

/** lastDays is the range of the last n days, today included. */
export function lastDays(n = 30) {
  const to = today();
  return { from: addDays(to, 1 - n), to };
}

/** rangeProblem says what is wrong with a range, or returns null. */
export function rangeProblem({ from, to }) {
  if (!from || !to) return 'Choose both days.';
  if (from > to) return 'The first day must not be after the last.';
  if (daysBetween(from, to) > MAX_DAYS) return `A range is at most ${MAX_DAYS} days.`;
  return null;
}

/** RangePicker edits a from/to range and applies it on submit. */
export function RangePicker({ value, onApply }) {
  const id = useId();
  const [from, setFrom] = useState(value.from);
  const [to, setTo] = useState(value.to);
  const [problem, setProblem] = useState(null);
  useEffect(() => {
    setFrom(value.from);
    setTo(value.to);
  }, [value.from, value.to]);
  const submit = (e) => {
    e.preventDefault();
    const p = rangeProblem({ from, to });
    setProblem(p);
    if (!p) onApply({ from, to });
  };
  const preset = (n) => {
    const r = lastDays(n);
    setProblem(null);
    onApply(r);
  };
  return (
    <form class="range" onSubmit={submit} aria-label="Date range">
      <label for={`${id}-from`}>From</label>
      <input id={`${id}-from`} type="date" value={from} max={to || undefined} required data-testid="range-from" onInput={(e) => setFrom(e.currentTarget.value)} />
      <label for={`${id}-to`}>To</label>
      <input id={`${id}-to`} type="date" value={to} min={from || undefined} required data-testid="range-to" onInput={(e) => setTo(e.currentTarget.value)} />
      <button type="submit" data-testid="range-apply">
        Apply
      </button>
      <span class="presets">
        {[7, 30, 90].map((n) => (
          <button type="button" class="link" onClick={() => preset(n)}>
            {n} days
          </button>
        ))}
      </span>
      {problem && (
        <span class="field-error" role="alert">
          {problem}
        </span>
      )}
    </form>
  );
}

/** Stat is one labelled figure of a summary card. */
export function Stat({ label, children, testid, sub }) {
  return (
    <div class="stat">
      <div class="stat-label">{label}</div>
      <div class="stat-value" data-testid={testid}>
        {children}
      </div>
      {sub && <div class="stat-sub">{sub}</div>}
    </div>
  );
}
