// A job's page (#/job/<id>): what it was given, its stats (the live summary while it runs,
// the whole final stats once it ended), a chart of items and requests over its life, and
// its first items with downloads of them all. Kept current from the event stream: a
// running job's record changes every ~2 s, and each change asks the daemon for the
// samples (and the first items, while fewer than shown) at most once per REFRESH ms.
// Items are crawled data: they only ever go into the page as text.

import {api, firstItems, itemsUrl} from '../api.js';
import {cancelButton, jobDetails, outcomeBadge, runAgainButton, runsLink, withErrorsNote} from '../components.js';
import {fill, h} from '../dom.js';
import {formatCount, formatDuration, formatRate} from '../format.js';
import {ACTIVE, COMPLETED, state, subscribe} from '../state.js';

export const title = 'Job';
export const MAX_ITEMS = 20;
export const REFRESH = 2000;   // ms between two fetches of samples and items while a job runs
const CELL = 300;              // characters of an item's value shown in its cell (the tooltip has more)

/** The running summary's keys, in the order shown, with their labels and formats. */
const SUMMARY = [
  ['items', 'Items', formatCount],
  ['items-per-minute', 'Items / min', formatRate],
  ['requests', 'Requests', formatCount],
  ['responses', 'Responses', formatCount],
  ['pages-per-minute', 'Pages / min', formatRate],
  ['errors', 'Errors', formatCount],
  ['elapsed', 'Elapsed', formatDuration],
];

/** A stats value as text: integers with separators, floats to 3 places, anything else as JSON. */
function statText(value) {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'number') return Number.isInteger(value) ? formatCount(value) : String(Number(value.toFixed(3)));
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** A stats key that may wrap after its slashes ("downloader/<wbr>response_count"). */
function breakable(key) {
  return key.split('/').flatMap((part, i) => (i ? [h('wbr'), `/${part}`] : [part]));
}

/** Key/value rows as side-by-side tables (long final stats fill the width, not the height). */
function statsTable(rows, testid) {
  const per = rows.length > 10 ? Math.ceil(rows.length / 3) : rows.length;
  const chunks = [];
  for (let i = 0; i < rows.length; i += per) chunks.push(rows.slice(i, i + per));
  return h('div', {class: 'stats-cols', 'data-testid': testid}, chunks.map((chunk) =>
    h('table', {class: 'grid kv'},
      h('tbody', null, chunk.map(([key, label, text]) => h('tr', {'data-key': key},
        h('th', {scope: 'row', class: label === key ? 'mono' : null}, label === key ? breakable(key) : label),
        h('td', {class: 'num', 'data-testid': 'stat-value'}, text)))))));
}

function summaryRows(stats) {
  return SUMMARY.filter(([key]) => key in stats).map(([key, label, format]) => [key, label, format(stats[key])]);
}

/** Scrapy's final stats, sorted by key (so related keys such as downloader/* sit together). */
function finalRows(stats) {
  return Object.keys(stats).sort().map((key) => [key, key, statText(stats[key])]);
}

// --- the chart: two polylines (items, requests) on one count axis, elapsed time across ---

const SVG = 'http://www.w3.org/2000/svg';
const W = 900;
const H = 180;
const PAD = {left: 44, right: 10, top: 10, bottom: 22};

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children) el.append(c);
  return el;
}

/** Samples as numbers, oldest first, from the crawl's start (0 s: nothing yet) on. */
function series(samples) {
  const points = (samples || []).filter((s) => Array.isArray(s) && s.length >= 3)
    .map(([t, items, requests]) => [Number(t) || 0, Number(items) || 0, Number(requests) || 0]);
  if (points.length && (points[0][0] > 0 || points[0][1] > 0 || points[0][2] > 0)) points.unshift([0, 0, 0]);
  return points;
}

/** An inline SVG chart of items and requests over the job's life, or null without samples. */
export function chart(samples) {
  const points = series(samples);
  if (!points.length) return null;
  const tLast = points[points.length - 1][0];
  const tMax = Math.max(1, tLast);
  const yMax = Math.max(1, ...points.map(([, i, r]) => Math.max(i, r)));
  // A crawl shorter than its first sample has them all at 0 s: spread them evenly instead.
  const along = tLast > 0 ? (p) => p[0] / tMax : (p, i) => (points.length > 1 ? i / (points.length - 1) : 1);
  const x = (f) => (PAD.left + f * (W - PAD.left - PAD.right)).toFixed(1);
  const y = (v) => (H - PAD.bottom - (v / yMax) * (H - PAD.top - PAD.bottom)).toFixed(1);
  const line = (col, cls, label) => svg('polyline', {class: cls, 'data-testid': `chart-${label}`,
    points: points.map((p, i) => `${x(along(p, i))},${y(p[col])}`).join(' ')},
  svg('title', null, `${label}: ${formatCount(points[points.length - 1][col])}`));
  const text = (tx, ty, anchor, s) => {
    const el = svg('text', {x: tx, y: ty, 'text-anchor': anchor, class: 'chart-label'});
    el.textContent = s;
    return el;
  };
  const last = points[points.length - 1];
  return svg('svg', {class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'data-testid': 'stats-chart',
    'data-points': points.length,
    'aria-label': `Items and requests over ${formatDuration(tMax)}: ${last[1]} items, ${last[2]} requests`},
  svg('line', {class: 'chart-axis', x1: PAD.left, y1: H - PAD.bottom, x2: W - PAD.right, y2: H - PAD.bottom}),
  svg('line', {class: 'chart-grid', x1: PAD.left, y1: PAD.top, x2: W - PAD.right, y2: PAD.top}),
  text(PAD.left - 6, PAD.top + 4, 'end', formatCount(yMax)),
  text(PAD.left - 6, H - PAD.bottom + 4, 'end', '0'),
  text(PAD.left, H - 6, 'start', '0s'),
  text(W - PAD.right, H - 6, 'end', formatDuration(tMax)),
  line(2, 'chart-requests', 'requests'),
  line(1, 'chart-items', 'items'));
}

/** The chart's last sample in words (the axis labels are too small to read on a phone). */
function caption(samples) {
  const points = series(samples);
  const [t, items, requests] = points[points.length - 1];
  return h('p', {class: 'muted small chart-caption', 'data-testid': 'chart-caption'},
    `${formatCount(items)} items and ${formatCount(requests)} requests after ${formatDuration(t)}`);
}

function legend() {
  return h('span', {class: 'chart-legend small'},
    h('span', {class: 'key key-items'}), 'items ', h('span', {class: 'key key-requests'}), 'requests');
}

// --- the first items ---

/** Column names: the union of the items' keys, in first-seen order. */
export function columns(items) {
  const seen = new Set();
  for (const item of items) {
    if (item && typeof item === 'object' && !Array.isArray(item)) Object.keys(item).forEach((k) => seen.add(k));
  }
  return [...seen];
}

/** A value as cell text: strings as they are, anything nested (or a number, null...) as JSON. */
export function cellText(value) {
  if (value === undefined) return '';
  return typeof value === 'string' ? value : JSON.stringify(value);
}

function cell(value) {
  const text = cellText(value);
  const short = text.length > CELL ? `${text.slice(0, CELL)}…` : text;
  return h('td', {class: typeof value === 'string' ? null : 'json', title: short === text ? null : text.slice(0, 4000)},
    short);
}

function itemsTable(items) {
  const keys = columns(items);
  return h('div', {class: 'table-wrap'},
    h('table', {class: 'grid items', 'data-testid': 'items-table'},
      h('thead', null, h('tr', null, h('th', {class: 'num'}, '#'), keys.map((k) => h('th', null, k)))),
      h('tbody', null, items.map((item, i) => h('tr', {'data-testid': 'item-row'},
        h('td', {class: 'num muted'}, String(i + 1)),
        keys.map((k) => cell(item && typeof item === 'object' ? item[k] : undefined)))))));
}

function downloads(id) {
  return h('span', {class: 'downloads small'},
    h('a', {href: itemsUrl(id, 'jl'), download: `${id}.jl`, 'data-testid': 'items-jl',
      title: 'Every item, one JSON object a line'}, 'all items .jl'),
    h('a', {href: itemsUrl(id, 'csv'), download: `${id}.csv`, 'data-testid': 'items-csv',
      title: 'Every item as CSV: one column per key, nested values as JSON'}, '.csv'));
}

export function mount(root, route) {
  const id = route.args[0] || '';
  let job = state.active.get(id) || null;
  let disposed = false;
  let final = null;        // the whole final stats, once the job ended
  let samples = null;      // null: not loaded
  let statsError = null;
  let items = null;        // {items, more} or null: not loaded
  let itemsError = null;
  let lastFetch = 0;
  let timer = null;
  let inflight = null;
  let again = null;        // 'now' | 'later': a refresh asked for while one was out
  const controller = new AbortController();

  const headBox = h('div', {class: 'log-head', 'data-testid': 'job-head'});
  const statsBox = h('div', {'data-testid': 'job-stats'});
  const chartBox = h('div', {class: 'chart-box', 'data-testid': 'job-chart'});
  const itemsBox = h('div', {'data-testid': 'job-items'});
  const itemsHead = h('div', {class: 'card-head'}, h('h2', null, 'First items'));
  const kindNote = h('span', {class: 'muted small', 'data-testid': 'stats-kind'});

  const running = () => job && job.status === 'RUNNING';
  const ended = () => job && COMPLETED.includes(job.status);

  function renderHead() {
    if (!job) {
      fill(headBox, h('h1', null, 'Job'), h('p', {class: 'muted mono'}, id));
      return;
    }
    const q = encodeURIComponent(id);
    fill(headBox,
      h('div', {class: 'log-title'},
        h('a', {href: '#/jobs', class: 'muted small'}, '← Jobs'),
        h('h1', null, job.spider, ' ', h('span', {class: 'muted'}, `· ${job.project}`)),
        outcomeBadge(job),
        withErrorsNote(job),
        ACTIVE.includes(job.status) ? cancelButton(job) : runAgainButton(job),
        ['RUNNING', ...COMPLETED].includes(job.status) ? h('span', {class: 'log-links'},
          h('a', {href: `#/log/${q}/err`, 'data-testid': 'log-link'}, 'log'),
          h('a', {href: `#/log/${q}/out`, class: 'muted', 'data-testid': 'out-link'}, 'out'))
          : job.status === 'SCHEDULED' ? h('span', {class: 'log-links'}, runsLink(job)) : null),
      jobDetails(job));
  }

  function renderStats() {
    kindNote.textContent = final ? 'final, as Scrapy reported them' : running() ? 'live summary, every ~2 s' : '';
    const summary = running() && job.stats && 'items' in job.stats;
    if (final) fill(statsBox, statsTable(finalRows(final), 'stats-table'));
    else if (summary) fill(statsBox, statsTable(summaryRows(job.stats), 'stats-table'));
    else {
      fill(statsBox, h('p', {class: 'muted', 'data-testid': 'stats-empty'}, statsError ||
        (!job ? 'Loading…' : ended() ? 'Loading the final stats…' : running() ? 'No stats reported yet.'
          : 'No stats: the job has not run.')));
    }
  }

  function renderChart() {
    const drawn = samples ? chart(samples) : null;
    fill(chartBox, drawn ? [drawn, caption(samples)] : h('p', {class: 'muted small', 'data-testid': 'chart-empty'},
      samples ? 'No samples yet.' : running() || ended() ? 'Loading…' : 'Nothing to draw before the job runs.'));
  }

  function renderItems() {
    fill(itemsHead, h('h2', null, 'First items'),
      items && items.items.length ? h('span', {class: 'muted small', 'data-testid': 'items-count'},
        `${items.items.length}${items.more ? ' shown, more in the downloads' : ' in all'}`) : null,
      running() || ended() ? downloads(id) : null);
    if (itemsError) fill(itemsBox, h('p', {class: 'muted', 'data-testid': 'items-empty'}, itemsError));
    else if (!items) fill(itemsBox, h('p', {class: 'muted', 'data-testid': 'items-empty'}, running() || ended()
      ? 'Loading…' : 'No items before the job runs.'));
    else if (!items.items.length) fill(itemsBox, h('p', {class: 'muted', 'data-testid': 'items-empty'}, 'No items yet.'));
    else fill(itemsBox, itemsTable(items.items));
  }

  async function loadStats() {
    try {
      const body = await api.stats(id, controller.signal);
      samples = body.samples || [];
      // The record may have ended while the request was out: only a finished job's stats are final.
      if (ended()) final = body.stats || {};
      statsError = null;
    } catch (err) {
      if (err.name === 'AbortError') return;
      statsError = err.code === 404 ? (ended() ? 'This job has no stats (its crawl reported none).'
        : 'No stats reported yet.') : err.message;
      if (!samples) samples = [];
    }
  }

  async function loadItems() {
    try {
      items = await firstItems(id, MAX_ITEMS, controller.signal);
      itemsError = null;
    } catch (err) {
      if (err.name === 'AbortError') return;
      // A crawl that just started may have no items file yet; after its end the daemon says why.
      itemsError = err.code === 404 && running() ? 'No items yet.' : err.message;
    }
  }

  /** Samples, final stats and first items, as far as the job has come. */
  async function refresh() {
    lastFetch = Date.now();
    const wantItems = !items || items.items.length < MAX_ITEMS || ended() || itemsError;
    await Promise.all([loadStats(), wantItems ? loadItems() : null]);
    if (disposed) return;
    renderStats();
    renderChart();
    renderItems();
  }

  /**
   * One refresh at a time, and while the job runs at most one each REFRESH ms. `now` (the job
   * just ended) skips the wait; a call while a refresh is out runs once more after it.
   */
  function schedule(now = false) {
    if (disposed) return;
    if (inflight) {
      again = again === 'now' || now ? 'now' : 'later';
      return;
    }
    if (timer !== null) {
      if (!now) return;
      clearTimeout(timer);
    }
    timer = setTimeout(run, now ? 0 : Math.max(0, lastFetch + REFRESH - Date.now()));
  }

  function run() {
    timer = null;
    inflight = refresh().finally(() => {
      inflight = null;
      const next = again;
      again = null;
      if (next) schedule(next === 'now');
    });
  }

  async function start() {
    try {
      if (!job) job = await api.job(id);
    } catch (err) {
      if (err.name === 'AbortError' || disposed) return;
      fill(headBox, h('h1', null, 'Job'), h('p', {class: 'error', role: 'alert', 'data-testid': 'job-error'}, err.message));
      return;
    }
    if (disposed) return;
    renderHead();
    renderStats();
    renderChart();
    renderItems();
    if (running() || ended()) schedule(true);
  }

  root.append(
    headBox,
    h('section', {class: 'card'},
      h('div', {class: 'card-head'}, h('h2', null, 'Progress'), legend()),
      chartBox),
    h('section', {class: 'card', 'data-testid': 'stats-section'},
      h('div', {class: 'card-head'}, h('h2', null, 'Stats'), kindNote),
      statsBox),
    h('section', {class: 'card items-card', 'data-testid': 'items-section'}, itemsHead, itemsBox));
  renderHead();
  renderStats();
  renderChart();
  renderItems();
  start();

  const off = subscribe((kind, data) => {
    if (kind === 'reset' && job && !ended()) {
      // Reconnected: the job may have ended meanwhile, unseen.
      api.job(id, controller.signal).then((fresh) => {
        if (!disposed && fresh) { job = fresh; renderHead(); renderStats(); schedule(ended()); }
      }).catch(() => {});
      return;
    }
    if (kind !== 'job' || data.identifier !== id) return;
    const wasActive = job && ACTIVE.includes(job.status);
    job = data;
    renderHead();
    renderStats();
    if (wasActive && ended()) schedule(true);         // the final stats, samples and items
    else if (running()) schedule();
  });
  return () => {
    disposed = true;
    off();
    clearTimeout(timer);
    controller.abort();
  };
}
