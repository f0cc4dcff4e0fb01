// The completed history in finish order, last finished first.
//
// The API lists jobs newest-submitted first and cannot sort by finish time. But the
// daemon keeps at most `completed-cap` completed jobs, so the completed jobs that match
// a view usually fit in one answer (FULL): then they are all loaded once, sorted here,
// and kept current from the event stream (a job that completes is put in its place, a
// purged one taken out), with no request per event. When more match, a view falls back
// to the API's pages of newest-submitted jobs, each page sorted by finish time.

import {api} from './api.js';
import {parseServerTime} from './format.js';
import {COMPLETED} from './state.js';

/** At most this many completed jobs are loaded at once to sort them all. */
export const FULL = 500;

/** Epoch ms, with the microseconds the daemon gives as a fraction: jobs ending within one millisecond
 *  (a burst of cancels) keep their real order. */
function instant(text) {
  const t = parseServerTime(text);
  if (Number.isNaN(t)) return 0;
  const micros = /\.\d{3}(\d{1,3})/.exec(text || '');
  return micros ? t + Number(micros[1].padEnd(3, '0')) / 1000 : t;
}

/** When a completed job ended (epoch ms): its finish time, else its start, else its submission. */
export function finishedAt(job) {
  return instant(job.finished || job.started || job.timestamp);
}

/** Sort order: last finished first; then last submitted first. */
export function byFinish(a, b) {
  return finishedAt(b) - finishedAt(a) || instant(b.timestamp) - instant(a.timestamp) ||
    (a.identifier < b.identifier ? 1 : a.identifier > b.identifier ? -1 : 0);
}

/** Whether a job record belongs in a completed list with these filters ({status, project, spider, parent}). */
export function matches(job, {status, project, spider, parent} = {}) {
  return COMPLETED.includes(job.status) && (!status || job.status === status) &&
    (!project || job.project === project) && (!spider || job.spider === spider) && (!parent || job.parent === parent);
}

/** A new sorted list with `job` in its place (replacing its older record, if any). */
export function upsert(jobs, job) {
  return [...jobs.filter((j) => j.identifier !== job.identifier), job].sort(byFinish);
}

export function without(jobs, identifier) {
  return jobs.filter((j) => j.identifier !== identifier);
}

/**
 * The completed jobs that match `filters`, last finished first: {jobs, total, complete}.
 * `complete` is true when they are all there (total <= FULL); otherwise `jobs` are the FULL
 * newest submitted of them.
 */
export async function loadCompleted(filters, signal) {
  const body = await api.listJobsPage({status: filters.status || 'COMPLETED', project: filters.project,
    spider: filters.spider, parent: filters.parent, limit: FULL}, signal);
  return {jobs: [...body.jobs].sort(byFinish), total: body.total, complete: body.total <= body.jobs.length};
}

/** One page of the API's listing (newest submitted first), sorted by finish time within the page. */
export async function loadPage(filters, offset, limit, signal) {
  const body = await api.listJobsPage({status: filters.status || 'COMPLETED', project: filters.project,
    spider: filters.spider, parent: filters.parent, limit, offset}, signal);
  return {jobs: [...body.jobs].sort(byFinish), total: body.total};
}
