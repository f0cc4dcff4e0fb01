// Pieces shared by the views: status badges, job cells, live elapsed times.

import {api} from './api.js';
import {h, toast} from './dom.js';
import {formatDuration, fullTime, parseServerTime, secondsSince, serverNow, shortId, shortTime} from './format.js';
import {state} from './state.js';

export function statusBadge(status) {
  return h('span', {class: ['badge', `s-${String(status).toLowerCase()}`], 'data-testid': 'job-status'}, status);
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
  if (job.status === 'SCHEDULED' && job['next-run']) {
    return h('span', {class: 'muted', title: `next run ${fullTime(job['next-run'])}`, 'data-testid': 'job-next-run'},
      'next ', shortTime(job['next-run']));
  }
  if (job.duration !== null && job.duration !== undefined) return h('span', null, formatDuration(job.duration));
  return h('span', {class: 'muted'}, '—');
}

export function spiderCell(job) {
  return h('div', {class: 'spider-cell'},
    h('span', {class: 'spider-name', 'data-testid': 'job-spider'}, job.spider),
    h('span', {class: 'muted small'}, job.project));
}

export function descriptionCell(job) {
  const schedule = job.schedule && job.schedule !== 'now' ? job.schedule : null;
  return h('div', {class: 'desc-cell'},
    job.description ? h('span', {'data-testid': 'job-description'}, job.description)
      : h('span', {class: 'muted'}, 'no description'),
    schedule ? h('span', {class: 'schedule small'}, '⟳ ', schedule) : null,
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

/** Every [data-since] element shows the time since then; uptime counts on from the last status. */
export function tick() {
  for (const el of document.querySelectorAll('[data-since]')) {
    const t = parseServerTime(el.dataset.since);
    if (!Number.isNaN(t)) el.textContent = formatDuration((serverNow() - t) / 1000);
  }
  const up = document.querySelector('[data-uptime]');
  if (up && state.status) {
    const seconds = state.status['uptime-seconds'] + (Date.now() - state.statusAt) / 1000;
    up.textContent = formatDuration(seconds);
  }
}

/** Cancel in one click; the job's next event redraws the row. */
const canceling = new Set();

export function cancelButton(job) {
  const busy = canceling.has(job.identifier);
  return h('button', {type: 'button', class: 'small danger-outline', 'data-testid': 'cancel-job', disabled: busy,
    title: job.status === 'RUNNING' ? 'Stop the crawl (SIGTERM, then SIGKILL after the grace time)'
      : job.status === 'SCHEDULED' ? 'Stop scheduling new runs' : 'Do not run it',
    onclick: async () => {
      // Rows are redrawn on every event: find this job's current button(s) each time.
      const buttons = () => document.querySelectorAll(`tr[data-job-id="${job.identifier}"] [data-testid="cancel-job"]`);
      const show = (busyNow) => buttons().forEach((b) => {
        b.disabled = busyNow;
        b.textContent = busyNow ? 'Canceling…' : 'Cancel';
      });
      canceling.add(job.identifier);
      show(true);
      try {
        await api.cancelJob(job.identifier);
        toast(`Canceled ${job.spider} (${job.identifier.slice(0, 8)}).`);
      } catch (err) {
        toast(err.message, 'error', 10000);
      } finally {
        canceling.delete(job.identifier);
        show(false);
      }
    }}, busy ? 'Canceling…' : 'Cancel');
}

