// The daemon's JSON API. Every failure becomes an ApiError whose message is the
// server's own "msg", shown to the user verbatim.

export class ApiError extends Error {
  constructor(message, code = 0) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
  }
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

async function errorFrom(response) {
  let msg = `${response.status} ${response.statusText}`.trim();
  try {
    const body = await response.json();
    if (body && body.msg) msg = body.msg;
  } catch { /* not JSON: keep the status line */ }
  return new ApiError(msg, response.status);
}

async function call(path, {params, form, signal} = {}) {
  const init = {signal, headers: {Accept: 'application/json'}};
  if (form) {
    const data = new FormData();
    for (const [k, v] of Object.entries(form)) {
      if (v !== undefined && v !== null) data.append(k, v);
    }
    init.method = 'POST';
    init.body = data;
  }
  let response;
  try {
    response = await fetch(path + query(params), init);
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(`cannot reach the daemon (${err.message})`);
  }
  if (!response.ok) throw await errorFrom(response);
  return response.json();
}

export const api = {
  status: () => call('/status.json'),
  listProjects: () => call('/list-projects.json').then((r) => r.projects),
  listSpiders: (project) => call('/list-spiders.json', {params: {project}}).then((r) => r.spiders),
  pushProject: (file) => call('/push-project.json', {form: {archive: file}}),
  removeProject: (name) => call('/remove-project.json', {form: {name}}),
  schedule: (fields) => call('/schedule-job.json', {form: fields}),
  /** params: status, project, spider, parent, limit, offset */
  listJobs: (params, signal) => call('/list-jobs.json', {params, signal}).then((r) => r.jobs),
  /** The same, with `total`: how many jobs match, whatever limit and offset. */
  listJobsPage: (params, signal) => call('/list-jobs.json', {params, signal}),
  job: (id, signal) => call('/list-jobs.json', {params: {id}, signal}).then((r) => r.jobs[0]),
  cancelJob: (id) => call('/cancel-job.json', {form: {id}}),
  /** Pause, resume and edit answer the job as it is now; the page still redraws from its event. */
  pauseJob: (id) => call('/pause-job.json', {form: {job_id: id}}).then((r) => r.job),
  resumeJob: (id) => call('/resume-job.json', {form: {job_id: id}}).then((r) => r.job),
  editJob: (id, fields) => call('/edit-job.json', {form: {job_id: id, ...fields}}).then((r) => r.job),
  /** Next run times of a spec, shown in `timezone` (the daemon's zone when empty). */
  preview: (when, count, signal, timezone) =>
    call('/preview-schedule.json', {params: {when, count, timezone}, signal}),
  /** {stats, samples}: a job's whole Scrapy stats and its [elapsed, items, requests] samples. */
  stats: (id, signal) => call(`/get-stats/${encodeURIComponent(id)}.json`, {signal}),
  /** {files: [{path, size, modified}], truncated}: what a project's crawls wrote in its data directory. */
  listData: (project, signal) => call('/list-data.json', {params: {project}, signal}),
  /** A project's environment (from its requirements.txt): {requirements, reused, seconds, packages, log}, or null. */
  projectEnvironment: (project, signal) =>
    call('/project-environment.json', {params: {project}, signal}).then((r) => r.environment || null),
  /** {hooks: [{url, events}], pending, delivered, failed, deliveries: [...]}, newest deliveries first. */
  webhooks: (params, signal) => call('/webhooks.json', {params, signal}),
};

/** The output of the build of a project's environment (text/plain). */
export function buildLogUrl(project) {
  return `/get-log/build/${encodeURIComponent(project)}.log`;
}

/** A job's items as JSON Lines (`jl`) or CSV (`csv`). */
export function itemsUrl(id, format) {
  return `/get-items/${encodeURIComponent(id)}.${format}`;
}

/** A data file's download address: each path segment encoded on its own, the slashes kept. */
export function dataUrl(project, path) {
  return `/get-data/${encodeURIComponent(project)}/${String(path).split('/').map(encodeURIComponent).join('/')}`;
}

/** At most this many bytes of the items file are read for the first items. */
export const ITEMS_BYTES = 256 * 1024;

/**
 * The first `max` items of a job: {items, more}. Only whole lines are parsed (a closed range
 * can cut one, and a running crawl may be writing one), so an item never shows half read.
 * An empty file is no items; a job with no items file is an ApiError (404) with the daemon's message.
 */
export async function firstItems(id, max, signal) {
  const response = await fetch(itemsUrl(id, 'jl'), {headers: {Range: `bytes=0-${ITEMS_BYTES - 1}`}, signal,
    cache: 'no-store'});
  if (response.status === 416) return {items: [], more: false};
  if (!response.ok) throw await errorFrom(response);
  const bytes = await readAtMost(response, ITEMS_BYTES);
  const end = bytes.lastIndexOf(10);
  const lines = new TextDecoder().decode(bytes.subarray(0, Math.max(0, end))).split('\n').filter((l) => l.trim());
  const items = [];
  for (const line of lines.slice(0, max)) {
    try {
      items.push(JSON.parse(line));
    } catch { /* a line that is not JSON: skip it rather than fail the table */ }
  }
  const total = /\/(\d+)$/.exec(response.headers.get('content-range') || '');
  return {items, more: lines.length > max || (total !== null && Number(total[1]) > bytes.length)};
}

/** The first `limit` bytes of a response's body; the rest is not read (a 200 may be a whole large file). */
async function readAtMost(response, limit) {
  const reader = response.body.getReader();
  const chunks = [];
  let size = 0;
  while (size < limit) {
    const {done, value} = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.length;
  }
  if (size >= limit) reader.cancel().catch(() => {});
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) { bytes.set(c, at); at += c.length; }
  return bytes.subarray(0, Math.min(size, limit));
}

export function logUrl(id, kind) {
  return `/get-log/data/${encodeURIComponent(id)}.${kind}`;
}

/** HEAD of a log: its current size in bytes. */
export async function logSize(id, kind, signal) {
  const response = await fetch(logUrl(id, kind), {method: 'HEAD', signal});
  if (!response.ok) {
    // HEAD has no body: ask for one byte to get the daemon's message.
    const again = await fetch(logUrl(id, kind), {headers: {Range: 'bytes=0-0'}, signal});
    throw again.ok ? new ApiError(`HTTP ${response.status}`, response.status) : await errorFrom(again);
  }
  return Number(response.headers.get('content-length') || 0);
}

/** Bytes [start, end] of a log (a closed range: never follows). */
export async function logSlice(id, kind, start, end, signal) {
  const response = await fetch(logUrl(id, kind), {headers: {Range: `bytes=${start}-${end}`}, signal});
  if (response.status === 416) return {start, bytes: new Uint8Array(0)};
  if (!response.ok) throw await errorFrom(response);
  let first = 0;
  const range = /bytes (\d+)-/.exec(response.headers.get('content-range') || '');
  if (response.status === 206 && range) first = Number(range[1]);
  return {start: first, bytes: new Uint8Array(await response.arrayBuffer())};
}

/** A log from `start` on; for a running job the response streams until the job ends. */
export async function logFollow(id, kind, start, signal) {
  const headers = start > 0 ? {Range: `bytes=${start}-`} : {};
  const response = await fetch(logUrl(id, kind), {headers, signal, cache: 'no-store'});
  if (response.status === 416) return null;
  if (!response.ok) throw await errorFrom(response);
  return response;
}

export {errorFrom};
