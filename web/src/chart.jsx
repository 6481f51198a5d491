// The daily chart: calls as bars (left axis), 4xx and 5xx as lines (right
// axis). The table beside it carries the same numbers for people who do
// not use the chart.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { useEffect, useRef } from 'preact/hooks';
import { num, short } from './format.js';

const HEIGHT = 260;
// Integer steps only: 1, 2, 5, 10, 20, 50 … so small error counts do not
// get half-call ticks.
const INCRS = Array.from({ length: 36 }, (_, i) => [1, 2, 5][i % 3] * 10 ** Math.floor(i / 3));

const DAY = 86400;
const DAY_INCRS = [1, 2, 3, 7, 14, 28, 56, 91, 182, 364].map((n) => n * DAY);

// dayLabels names the x ticks MM-DD, with the year under the first tick of
// each year.
function dayLabels(_u, splits) {
  let year = null;
  return splits.map((ts) => {
    const iso = new Date(ts * 1000).toISOString();
    const y = iso.slice(0, 4);
    const label = iso.slice(5, 10) + (y !== year ? `\n${y}` : '');
    year = y;
    return label;
  });
}

function fromZero(_u, _min, max) {
  return [0, max > 0 ? max * 1.1 : 1];
}

function columns(days) {
  return [
    days.map((d) => Date.parse(`${d.day}T00:00:00Z`) / 1000),
    days.map((d) => d.calls),
    days.map((d) => d.errors_4xx),
    days.map((d) => d.errors_5xx),
  ];
}

function options(width, onDraw) {
  const value = (_u, v) => (v == null ? '—' : num(v));
  const axis = { stroke: '#4a5260', grid: { stroke: '#e6e8ec', width: 1 }, ticks: { stroke: '#d4d7dd', width: 1 } };
  return {
    width,
    height: HEIGHT,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
    cursor: { drag: { x: false, y: false }, points: { size: 7 } },
    select: { show: false },
    legend: { live: true },
    scales: {
      x: { time: true, range: (_u, min, max) => [min - DAY / 2, max + DAY / 2] },
      calls: { range: fromZero },
      errors: { range: fromZero },
    },
    series: [
      { label: 'Day (UTC)', value: (_u, ts) => (ts == null ? '—' : new Date(ts * 1000).toISOString().slice(0, 10)) },
      {
        label: 'Calls',
        scale: 'calls',
        stroke: '#2f6fde',
        fill: 'rgba(47, 111, 222, 0.35)',
        width: 1,
        paths: uPlot.paths.bars({ size: [0.7, 40] }),
        points: { show: false },
        value,
      },
      { label: '4xx', scale: 'errors', stroke: '#b86e00', width: 2, points: { size: 4 }, value },
      { label: '5xx', scale: 'errors', stroke: '#c0392b', width: 2, dash: [6, 3], points: { size: 4 }, value },
    ],
    axes: [
      { ...axis, incrs: DAY_INCRS, values: dayLabels },
      { ...axis, scale: 'calls', label: 'Calls', size: 56, incrs: INCRS, values: (_u, splits) => splits.map(short) },
      { ...axis, scale: 'errors', side: 1, label: 'Errors', size: 56, incrs: INCRS, grid: { show: false }, values: (_u, splits) => splits.map(short) },
    ],
    hooks: { draw: [onDraw] },
  };
}

/**
 * DailyChart draws days ([{day, calls, errors_4xx, errors_5xx}]) and calls
 * onDrawn after each drawing with data.
 */
export function DailyChart({ days, label, onDrawn }) {
  const box = useRef(null);
  const plot = useRef(null);
  const drawn = useRef(onDrawn);
  drawn.current = onDrawn;

  useEffect(() => {
    const el = box.current;
    const u = new uPlot(options(el.clientWidth || 600, (p) => p.data[0].length && drawn.current?.()), columns(days), el);
    plot.current = u;
    const ro = new ResizeObserver(() => {
      if (el.clientWidth && el.clientWidth !== u.width) u.setSize({ width: el.clientWidth, height: HEIGHT });
    });
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, []);

  useEffect(() => {
    plot.current?.setData(columns(days));
  }, [days]);

  return <div class="chart" ref={box} role="img" aria-label={label} />;
}
