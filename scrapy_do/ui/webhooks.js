// The dashboard's Webhooks card (GET /webhooks.json): the hooks of [webhooks] hooks (by origin: their paths may
// hold secrets, the daemon never shows them), how many deliveries are pending, delivered and given up, and the
// newest deliveries with their last error.
//
// Live without a polling loop: the card loads again (debounced) when the event stream says a job ended, a
// project was pushed, a schedule skipped a run or the stream reconnected, since those make deliveries. Attempts
// are driven by the daemon's clock and have no event, so while deliveries are pending, and only then, the card
// loads once more just after the soonest next attempt is due (1.5 s to 30 s away; overdue ones, e.g. to a
// receiver that rests after a failure or an attempt still in flight, back off from 1.5 s while nothing changes).
//
// Everything a receiver or the configuration gave (URLs, errors) goes in as text (dom.js), never as HTML.

import {api} from './api.js';
import {emptyRow, jobHref, timeCell} from './components.js';
import {debounce, fill, h} from './dom.js';
import {formatCount, parseServerTime, serverNow, shortId} from './format.js';
import {COMPLETED, state, subscribe} from './state.js';

/** How many of the newest deliveries the card lists. */
export const SHOWN = 10;
const AFTER_EVENT = 600;  // ms: a job's end makes its deliveries at once; by then the first attempt has mostly answered
const MIN_WAIT = 1500;
const MAX_WAIT = 30000;
const AFTER_DUE = 700;    // ms after a next attempt is due: time for the daemon to send it and hear the answer

const STATES = {
  pending: ['PENDING', 's-pending', 'Not acknowledged yet: the daemon tries again at the next attempt'],
  delivered: ['DELIVERED', 's-successful', 'The receiver answered 2xx'],
  failed: ['GIVEN UP', 's-failed', 'Not acknowledged within retry-for: the daemon stopped trying'],
};

function counter(label, value, testid, tone, title) {
  return h('div', {class: ['counter', tone], 'data-testid': testid, title},
    h('span', {class: 'counter-value', 'data-testid': `${testid}-value`}, formatCount(value ?? 0)),
    h('span', {class: 'counter-label'}, label));
}

function hookList(hooks, any) {
  if (!hooks.length) {
    return h('p', {class: 'muted small', 'data-testid': 'webhooks-no-hooks'},
      any ? 'No hook in [webhooks] hooks: these deliveries went to jobs\u2019 notify URLs, or to hooks configured before.'
        : 'No hook in [webhooks] hooks.');
  }
  return h('ul', {class: 'hooks', 'data-testid': 'webhook-hooks'}, hooks.map((hook) =>
    h('li', {'data-testid': 'webhook-hook'},
      h('code', {'data-testid': 'webhook-hook-url', title: 'Scheme and host only: the path is not shown'}, hook.url),
      h('span', {class: 'tags'}, (hook.events || []).map((e) => h('span', {class: 'tag', 'data-testid': 'webhook-hook-event'}, e))))));
}

function jobCell(id, jobName) {
  if (!id) return h('span', {class: 'muted'}, '—');
  const name = jobName(id);
  return h('a', {href: jobHref(id), class: 'job-link spider-cell', 'data-testid': 'delivery-job', title: id},
    name ? h('span', {class: 'spider-name'}, name) : null,
    h('span', {class: name ? 'muted small mono' : 'mono'}, shortId(id)));
}

function errorCell(d) {
  const text = d['last-error'];
  if (!text) return h('span', {class: 'muted'}, '—');
  const delivered = d.state === 'delivered';
  return h('span', {class: ['delivery-error', delivered ? 'muted' : 'error'], 'data-testid': 'delivery-error',
    title: delivered ? `An earlier attempt failed (${text}); a later one was acknowledged` : text}, text);
}

function deliveryRow(d, jobName) {
  const [label, cls, why] = STATES[d.state] || [String(d.state).toUpperCase(), 's-canceled', ''];
  const tone = d.state === 'failed' ? 'wh-failed' : d.state === 'pending' && d['last-error'] ? 'wh-retrying' : null;
  return h('tr', {class: tone, 'data-testid': 'delivery-row', 'data-delivery-id': d.id, 'data-state': d.state,
    'data-event': d.event, 'data-delivery-job': d.job || null},
    h('td', null, h('div', {class: 'spider-cell'},
      h('span', {class: 'mono delivery-event', 'data-testid': 'delivery-event'}, d.event),
      h('span', {class: 'muted small'}, timeCell(d.created)))),
    h('td', {class: 'receiver'}, h('code', {'data-testid': 'delivery-url', title: d.url}, d.url)),
    h('td', null, jobCell(d.job, jobName)),
    h('td', null, h('div', {class: 'status-cell'},
      h('span', {class: ['badge', cls], 'data-testid': 'delivery-state', title: why}, label),
      d.ended ? h('span', {class: 'muted small'}, timeCell(d.ended)) : null)),
    h('td', {class: 'num', 'data-testid': 'delivery-attempts', title: 'attempts so far'}, String(d.attempts ?? 0)),
    h('td', {class: 'num', 'data-testid': 'delivery-next'},
      d.state === 'pending' && d['next-attempt'] ? timeCell(d['next-attempt']) : h('span', {class: 'muted'}, '—')),
    h('td', {class: 'desc'}, errorCell(d)));
}

/**
 * The card in `box`. `jobName(id)` gives a job's spider when the page knows it (else null).
 * Returns {render, stop}: render() redraws from the last answer (the day changed, jobs' names arrived).
 */
export function webhooksCard(box, jobName = () => null) {
  let data = null;
  let error = null;
  let controller = null;
  let timer = null;
  let lastKey = '';
  let quiet = 0;        // answers in a row that changed nothing
  let stopped = false;

  const render = () => {
    const head = h('div', {class: 'card-head'}, h('h2', null, 'Webhooks'),
      h('a', {href: '/webhooks.json?limit=500', class: 'small', title: 'The 500 newest deliveries, as JSON'},
        'JSON →'));
    if (!data) {
      fill(box, head, error ? h('p', {class: 'error', 'data-testid': 'webhooks-error'}, error)
        : h('p', {class: 'muted'}, 'Loading…'));
      return;
    }
    const hooks = data.hooks || [];
    const deliveries = data.deliveries || [];
    const total = (data.pending || 0) + (data.delivered || 0) + (data.failed || 0);
    box.dataset.hooks = String(hooks.length);
    if (!hooks.length && !total && !deliveries.length) {
      // Nothing configured, nothing sent: one line that says how to, instead of an empty table.
      fill(box, head, error ? h('p', {class: 'error', 'data-testid': 'webhooks-error'}, error) : null,
        h('p', {class: 'muted small webhooks-none', 'data-testid': 'webhooks-none'},
          'No webhooks configured. To have the daemon POST job ends, failures, skipped runs and pushes to a URL, add ',
          h('code', null, 'hooks = URL [EVENT ...]'), ' under ', h('code', null, '[webhooks]'),
          ' in its configuration.'));
      return;
    }
    fill(box, head,
      error ? h('p', {class: 'error', 'data-testid': 'webhooks-error'}, error) : null,
      h('div', {class: 'webhooks-summary'},
        hookList(hooks, total > 0),
        h('div', {class: 'counters webhook-counters'},
          counter('Pending', data.pending, 'webhooks-pending', data.pending ? 'warn' : '',
            'Not acknowledged yet: tried again with doubling waits'),
          counter('Delivered', data.delivered, 'webhooks-delivered', 'ok', 'Acknowledged with a 2xx'),
          counter('Given up', data.failed, 'webhooks-failed', data.failed ? 'bad' : '',
            'Not acknowledged within retry-for'))),
      h('div', {class: 'table-wrap'},
        h('table', {class: 'jobs deliveries', 'data-testid': 'webhooks-deliveries'},
          h('thead', null, h('tr', null,
            ['Event', 'Receiver', 'Job', 'State', 'Attempts', 'Next attempt', 'Last error'].map((c) =>
              h('th', {class: c === 'Attempts' || c === 'Next attempt' ? 'num' : null}, c)))),
          h('tbody', null, deliveries.length ? deliveries.map((d) => deliveryRow(d, jobName))
            : emptyRow(7, 'No delivery yet.', 'webhooks-deliveries-empty')))),
      total > deliveries.length ? h('p', {class: 'muted small footnote'},
        `The ${deliveries.length} newest of ${formatCount(total)} kept.`) : null);
  };

  // While deliveries are pending: load again once the soonest next attempt is due (see the top of the file).
  const arm = () => {
    clearTimeout(timer);
    timer = null;
    if (stopped || !data || !data.pending) return;
    const now = serverNow();
    let wait = MAX_WAIT;
    let overdue = false;
    for (const d of data.deliveries || []) {
      if (d.state !== 'pending') continue;
      const t = parseServerTime(d['next-attempt']);
      if (Number.isNaN(t)) continue;
      if (t > now) wait = Math.min(wait, t - now + AFTER_DUE);
      else overdue = true;
    }
    if (overdue) wait = Math.min(wait, MIN_WAIT * 2 ** Math.min(quiet, 5));
    timer = setTimeout(load, Math.max(MIN_WAIT, Math.min(MAX_WAIT, wait)));
  };

  const load = async () => {
    clearTimeout(timer);
    timer = null;
    controller?.abort();
    const mine = controller = new AbortController();
    try {
      const answer = await api.webhooks({limit: SHOWN}, mine.signal);
      if (stopped || mine !== controller) return;
      const key = JSON.stringify([answer.hooks, answer.pending, answer.delivered, answer.failed, answer.deliveries]);
      quiet = key === lastKey ? quiet + 1 : 0;
      lastKey = key;
      data = answer;
      error = null;
      render();
      arm();
    } catch (err) {
      if (err.name === 'AbortError' || stopped) return;
      // The stream's reconnect ('reset') loads again; no retry loop of its own.
      error = `Could not load the webhooks: ${err.message}`;
      render();
    }
  };
  const soon = debounce(load, AFTER_EVENT);

  // What makes deliveries: a run's end, a push, a skipped due run (a schedule's `skipped` goes up).
  const skipped = new Map([...state.active.values()].filter((j) => j.status === 'SCHEDULED')
    .map((j) => [j.identifier, j.skipped || 0]));
  const off = subscribe((kind, job) => {
    if (kind === 'reset' || (kind === 'projects' && job?.action !== 'removed')) soon();
    else if (kind === 'job' && COMPLETED.includes(job.status)) soon();
    else if (kind === 'job' && job.status === 'SCHEDULED') {
      const n = job.skipped || 0;
      if (n > (skipped.get(job.identifier) ?? n)) soon();
      skipped.set(job.identifier, n);
    }
  });

  render();
  load();
  return {
    render: () => { if (data || error) render(); },
    stop: () => {
      stopped = true;
      off();
      soon.cancel();
      clearTimeout(timer);
      controller?.abort();
    },
  };
}
