// Pieces shared by the views: status badges, job cells, live elapsed times.

import {api} from './api.js';
import {h, toast} from './dom.js';
import {formatCount, formatDuration, formatRate, fullTime, parseServerTime, secondsSince, serverNow, shortId,
  shortTime} from './format.js';
import {state} from './state.js';

export function statusBadge(status, extra) {
  return h('span', {class: ['badge', `s-${String(status).toLowerCase()}`, extra], 'data-testid': 'job-status'}, status);
}

/** A job's error count: the record's `errors`, or while it runs its stats summary's (null if unknown). */
export function errorCount(job) {
  const n = job.errors ?? (job.status === 'RUNNING' ? job.stats?.errors : null);
  return typeof n === 'number' ? n : null;
}

/** A SUCCESSFUL job that logged errors: its crawl exited 0, but not everything went right. */
export function succeededWithErrors(job) {
  return job.status === 'SUCCESSFUL' && errorCount(job) > 0;
}

const plural = (n, word) => `${formatCount(n)} ${word}${n === 1 ? '' : 's'}`;

/** The status badge; a SUCCESSFUL job with errors gets the warning look (not the failed one). */
export function outcomeBadge(job) {
  const mixed = succeededWithErrors(job);
  const badge = statusBadge(job.status, mixed ? 's-with-errors' : null);
  if (mixed) badge.title = `Succeeded with errors: the crawl exited 0 but logged ${plural(errorCount(job), 'error')}`;
  return badge;
}

/** "succeeded with 2 errors", under the badge of a job that did (null for any other job). */
export function withErrorsNote(job) {
  if (!succeededWithErrors(job)) return null;
  return h('span', {class: 'with-errors small', 'data-testid': 'job-with-errors',
    title: 'Errors logged and spider exceptions; its log says which'}, `succeeded with ${plural(errorCount(job), 'error')}`);
}

const REASONS = {
  timeout: 'it reached its time limit (whatever its exit code)',
  canceled: 'it was canceled',
  'failed to start': 'the crawl could not start; its log says why',
  errors: 'it logged errors and fails on errors (fail-on-errors)',
};

/** Why one part of a reason happened, for the tooltip. */
function why(part) {
  if (REASONS[part]) return REASONS[part];
  if (part.startsWith('signal')) return `a signal ended it (${part})`;
  if (part.startsWith('items capped')) return 'its items outgrew max-items-size: only the first ones were kept';
  return `the crawl ended with ${part}`;
}

/** Why a completed job ended as it did ("timeout", "exit code 1", "errors; items capped at ...", ...), or null. */
export function reasonText(job) {
  if (!job.reason) return null;
  const parts = String(job.reason).split('; ').filter(Boolean);
  return h('span', {class: 'reason small', 'data-testid': 'job-reason',
    title: `Ended this way because ${parts.map(why).join('; and ')}`}, job.reason);
}

/** The status badge, a PAUSED badge for a paused schedule, errors of a successful job, why a completed job ended. */
export function statusCell(job) {
  return h('div', {class: 'status-cell'},
    outcomeBadge(job),
    job.status === 'SCHEDULED' && job.paused ? h('span', {class: 'badge s-paused', 'data-testid': 'job-paused',
      title: 'Paused: it spawns no runs until it is resumed'}, 'PAUSED') : null,
    withErrorsNote(job),
    reasonText(job));
}

/** A running job's live counts, from its stats summary (refreshed every ~2 s through /events). */
export function progressCell(job) {
  const s = job.status === 'RUNNING' ? job.stats : null;
  if (!s || s.items === undefined) {
    return h('span', {class: 'muted small', 'data-testid': 'job-progress',
      title: job.status === 'RUNNING' ? 'the crawl has not reported its stats yet' : null}, '—');
  }
  const errors = errorCount(job) ?? 0;
  return h('div', {class: 'progress-cell', 'data-testid': 'job-progress'},
    h('span', null, h('strong', {'data-testid': 'job-items'}, formatCount(s.items)), ' items · ',
      h('span', {'data-testid': 'job-rate', title: 'items a minute, over the last minute'},
        formatRate(s['items-per-minute'])), '/min'),
    h('span', {class: 'muted small'},
      h('span', {'data-testid': 'job-requests'}, formatCount(s.requests)), ' requests · ',
      h('span', {class: errors ? 'error' : null, 'data-testid': 'job-errors'}, formatCount(errors)),
      errors === 1 ? ' error' : ' errors'));
}

/** A job's args or settings: compact JSON, or a dash for none. */
function jsonCode(object) {
  return object && Object.keys(object).length ? h('code', null, JSON.stringify(object)) : '—';
}

/** What a job was given and how it ended, as the definition list atop its log and its page. */
export function jobDetails(job) {
  const errors = errorCount(job);
  const rows = [
    ['Job', h('code', {title: job.identifier}, job.identifier)],
    ['Project', job.project],
    ['Description', job.description || h('span', {class: 'muted'}, '—')],
    ['Schedule', job.schedule],
    ['Payload', h('code', null, job.payload)],
    ['Created', timeCell(job.timestamp)],
    ['Started', timeCell(job.started)],
    ['Finished', timeCell(job.finished)],
    ['Duration', job.status === 'RUNNING' && job.started ? elapsed(job.started) : formatDuration(job.duration)],
    ['Exit code', job['exit-code'] ?? '—'],
    ['Ended because', job.reason ? reasonText(job) : '—'],
    ['Errors', errors === null ? '—' : h('span', {class: errors ? 'with-errors' : null, 'data-testid': 'job-error-count'},
      formatCount(errors))],
    ['Priority', String(job.priority ?? 0)],
    ['Time limit', job.timeout ? `${formatDuration(job.timeout)} (${job.timeout} s)` : '—'],
    ['On errors', job['fail-on-errors'] === true ? 'fail' : job['fail-on-errors'] === false ? 'succeed'
      : h('span', {class: 'muted', title: 'the daemon\u2019s fail-on-errors decides'}, 'daemon\u2019s default')],
    ['Arguments', jsonCode(job.args)],
    ['Settings', jsonCode(job.settings)],
  ];
  return h('dl', {class: 'meta'}, rows.map(([k, v]) => h('div', null, h('dt', null, k), h('dd', null, v))));
}

export function timeCell(text) {
  return h('time', {title: fullTime(text), datetime: fullTime(text)}, shortTime(text));
}

/** An element whose text is the time since `since`, kept current by the ticker. */
export function elapsed(since, props = {}) {
  const el = h('span', {class: 'elapsed', 'data-since': since, ...props});
  el.textContent = formatDuration(secondsSince(since));
  return el;
}

/** Duration of a job: final for completed jobs, ticking for running ones. */
export function jobDuration(job) {
  if (job.status === 'RUNNING' && job.started) return elapsed(job.started, {'data-testid': 'job-elapsed'});
  if (job.status === 'PENDING') return h('span', {class: 'muted', title: 'waiting for a job slot'}, 'waiting ', elapsed(job.timestamp));
  if (job.status === 'SCHEDULED' && job.paused) {
    return h('span', {class: 'muted', title: 'no next run while paused', 'data-testid': 'job-next-run'}, 'paused');
  }
  if (job.status === 'SCHEDULED' && job['next-run']) {
    return h('span', {class: 'muted', title: `next run ${fullTime(job['next-run'])}`, 'data-testid': 'job-next-run'},
      'next ', shortTime(job['next-run']));
  }
  if (job.duration !== null && job.duration !== undefined) return h('span', null, formatDuration(job.duration));
  return h('span', {class: 'muted'}, '—');
}

/** The job's page: its options, stats, chart and first items. */
export function jobHref(id) {
  return `#/job/${encodeURIComponent(id)}`;
}

export function spiderCell(job) {
  return h('div', {class: 'spider-cell'},
    h('a', {href: jobHref(job.identifier), class: 'job-link', 'data-testid': 'job-link',
      title: 'Details, stats and items'}, h('span', {class: 'spider-name', 'data-testid': 'job-spider'}, job.spider)),
    h('span', {class: 'muted small'}, job.project));
}

/** Small tags for what a job was given besides its spider: priority, time limit, schedule options. */
function jobTags(job) {
  const tags = [];
  const tag = (text, testid, title) => tags.push(h('span', {class: 'tag', 'data-testid': testid, title}, text));
  if (job.priority) tag(`priority ${job.priority}`, 'job-priority', 'Pending jobs start highest priority first');
  if (job.timeout) tag(`limit ${formatDuration(job.timeout)}`, 'job-timeout', `Time limit: ${job.timeout} s after it starts`);
  const args = Object.keys(job.args || {}).length;
  const settings = Object.keys(job.settings || {}).length;
  if (args) tag(`${args} arg${args === 1 ? '' : 's'}`, 'job-args', `Spider arguments: ${JSON.stringify(job.args)}`);
  if (settings) {
    tag(`${settings} setting${settings === 1 ? '' : 's'}`, 'job-settings', `Scrapy settings: ${JSON.stringify(job.settings)}`);
  }
  if (job['fail-on-errors'] === true) tag('fails on errors', 'job-fail-on-errors', 'Fails if the crawl logs errors, even if it exits 0');
  if (job['fail-on-errors'] === false) {
    tag('errors do not fail', 'job-fail-on-errors', 'Succeeds (marked with errors) if the crawl exits 0 after errors');
  }
  if (job.status === 'SCHEDULED') {
    if (job['catch-up']) tag('catch-up', 'job-catch-up', 'Makes up once for runs missed while the daemon was down');
    if (job.overlap === 'skip' || job.skipped) {
      tag(`skipped ${job.skipped || 0}`, 'job-skipped',
        job.overlap === 'skip' ? 'Skips a due run while its previous run is pending or running; times skipped so far'
          : 'Due runs skipped while it skipped overlapping runs');
    }
  }
  return tags.length ? h('span', {class: 'tags'}, tags) : null;
}

export function descriptionCell(job) {
  const schedule = job.schedule && job.schedule !== 'now' ? job.schedule : null;
  return h('div', {class: 'desc-cell'},
    job.description ? h('span', {'data-testid': 'job-description'}, job.description)
      : h('span', {class: 'muted'}, 'no description'),
    schedule ? h('span', {class: 'schedule small'}, '⟳ ', h('span', {'data-testid': 'job-schedule'}, schedule),
      job.timezone ? h('span', {class: 'muted', 'data-testid': 'job-timezone', title: 'the zone its spec is read in'},
        ` · ${job.timezone}`) : null) : null,
    jobTags(job),
    h('span', {class: 'muted small mono', title: job.identifier}, shortId(job.identifier)));
}

export function logLinks(job) {
  if (job.status === 'SCHEDULED' || job.status === 'PENDING') return h('span', {class: 'muted'}, '—');
  const id = encodeURIComponent(job.identifier);
  return h('span', {class: 'log-links'},
    h('a', {href: `#/log/${id}/err`, 'data-testid': 'log-link'}, 'log'),
    h('a', {href: `#/log/${id}/out`, class: 'muted', 'data-testid': 'out-link', title: 'standard output'}, 'out'));
}

export function emptyRow(colspan, text, testid) {
  return h('tr', {class: 'empty'}, h('td', {colspan, 'data-testid': testid}, text));
}

/** Every [data-since] element shows the time since then: running jobs' durations, pending jobs' waits. */
export function tick() {
  for (const el of document.querySelectorAll('[data-since]')) {
    const t = parseServerTime(el.dataset.since);
    if (!Number.isNaN(t)) el.textContent = formatDuration((serverNow() - t) / 1000);
  }
}

// The one-second ticker runs only while a job runs or waits: app.js calls syncTicker()
// after every job event and reload; with nothing running or pending it is stopped.
let ticker = null;

export function syncTicker() {
  const live = [...state.active.values()].some((j) => j.status === 'RUNNING' || j.status === 'PENDING');
  if (live && !ticker) {
    ticker = setInterval(tick, 1000);
  } else if (!live && ticker) {
    clearInterval(ticker);
    ticker = null;
  }
}

/** Whether the ticker runs (for the tests). */
export function tickerRunning() {
  return ticker !== null;
}

/** One click on a job: the button stays busy (across redraws) until the daemon answers; the job's next event redraws the row. */
const busy = new Set();

/** `done` is the toast's message, or a function from what `run` answered to it. */
function jobButton(job, {action, label, busyLabel, testid, title, cls = 'small', run, done}) {
  const key = `${action} ${job.identifier}`;
  return h('button', {type: 'button', class: cls, 'data-testid': testid, 'data-job': job.identifier, title,
    disabled: busy.has(key),
    onclick: async () => {
      // Rows are redrawn on every event: find this job's current button(s) each time.
      const show = (busyNow) => document.querySelectorAll(`[data-testid="${testid}"][data-job="${job.identifier}"]`)
        .forEach((b) => {
          b.disabled = busyNow;
          b.textContent = busyNow ? busyLabel : label;
        });
      busy.add(key);
      show(true);
      try {
        const result = await run();
        toast(typeof done === 'function' ? done(result) : done);
      } catch (err) {
        toast(err.message, 'error', 10000);
      } finally {
        busy.delete(key);
        show(false);
      }
    }}, busy.has(key) ? busyLabel : label);
}

const named = (job) => `${job.spider} (${job.identifier.slice(0, 8)})`;

export function cancelButton(job) {
  return jobButton(job, {action: 'cancel', label: 'Cancel', busyLabel: 'Canceling…', testid: 'cancel-job',
    cls: 'small danger-outline',
    title: job.status === 'RUNNING' ? 'Stop the crawl (SIGTERM, then SIGKILL after the grace time)'
      : job.status === 'SCHEDULED' ? 'Stop scheduling new runs' : 'Do not run it',
    run: () => api.cancelJob(job.identifier), done: `Canceled ${named(job)}.`});
}

/** Pause or resume a SCHEDULED job, whichever applies. */
export function pauseResumeButton(job) {
  return job.paused
    ? jobButton(job, {action: 'resume', label: 'Resume', busyLabel: 'Resuming…', testid: 'resume-job',
      title: 'Spawn runs again; the next run is computed from now', run: () => api.resumeJob(job.identifier),
      done: `Resumed ${named(job)}.`})
    : jobButton(job, {action: 'pause', label: 'Pause', busyLabel: 'Pausing…', testid: 'pause-job',
      title: 'Spawn no runs until resumed (runs already spawned go on)', run: () => api.pauseJob(job.identifier),
      done: `Paused ${named(job)}.`});
}

/** Edit a SCHEDULED job in the schedule form. */
export function editLink(job) {
  return h('a', {class: 'button small', href: `#/schedule?edit=${encodeURIComponent(job.identifier)}`,
    'data-testid': 'edit-job', title: 'Change its spec, time zone, arguments, settings and options'}, 'Edit');
}

/** The runs a SCHEDULED job spawned, in the jobs list. */
export function runsLink(job) {
  return h('a', {href: `#/jobs?parent=${encodeURIComponent(job.identifier)}`, 'data-testid': 'runs-link',
    title: 'The runs this job spawned'}, 'runs');
}

/** The fields of schedule-job.json that run `job` once more, now, with the options it was given. */
export function runAgainFields(job) {
  const fields = {project: job.project, spider: job.spider, when: 'now', description: job.description || ''};
  if (job.payload !== null && job.payload !== undefined) {
    fields.payload = typeof job.payload === 'string' ? job.payload : JSON.stringify(job.payload);
  }
  if (job.args && Object.keys(job.args).length) fields.args = JSON.stringify(job.args);
  if (job.settings && Object.keys(job.settings).length) fields.settings = JSON.stringify(job.settings);
  if (job.priority) fields.priority = String(job.priority);
  if (job.timeout) fields.timeout = String(job.timeout);
  if (typeof job['fail-on-errors'] === 'boolean') fields['fail-on-errors'] = job['fail-on-errors'] ? 'on' : 'off';
  if (job.warm === false) fields.warm = 'off';
  return fields;
}

/** Schedule a completed job again, now, with the same payload, arguments, settings, priority, time limit, fail-on-errors and warm. */
export function runAgainButton(job) {
  const periodic = job.schedule && job.schedule !== 'now';
  return jobButton(job, {action: 'again', label: 'Run again', busyLabel: 'Scheduling…', testid: 'run-again',
    title: `Run ${job.spider} once more, now, with the same payload, arguments, settings, priority and time limit` +
      (periodic ? ` (once: not every time of ${job.schedule})` : ''),
    run: () => api.schedule(runAgainFields(job)),
    done: (body) => {
      const id = body.identifier;
      return [`Scheduled ${job.spider} again: `,
        h('code', {'data-testid': 'run-again-id', title: id}, id), ' ',
        h('a', {href: `#/log/${encodeURIComponent(id)}/err`, 'data-testid': 'run-again-log'}, 'follow its log')];
    }});
}
