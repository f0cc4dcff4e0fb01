// The live feed: one EventSource on /events. The first event is a status
// snapshot; then job, job-removed, project and status events as things change.
// After a reconnect the lists are loaded again, since events may have been missed.

import {api} from './api.js';
import {parseServerTime, serverOffset} from './format.js';
import {emit, isActive, state} from './state.js';

let source = null;
let loading = null;
let buffered = null;   // events that arrive while a (re)load is in flight

function setConnection(value) {
  if (state.connection !== value) {
    state.connection = value;
    emit('connection', value);
  }
}

function applyStatus(status) {
  state.status = status;
  state.statusAt = Date.now();
  const t = parseServerTime(status.time);
  if (!Number.isNaN(t)) state.clockOffset = t - Date.now();
  if (status.time) state.serverDate = String(status.time).slice(0, 10);
  const offset = serverOffset(status.time);
  if (!Number.isNaN(offset)) state.serverOffset = offset;
  emit('status', status);
}

function applyJob(job) {
  if (isActive(job)) state.active.set(job.identifier, job);
  else state.active.delete(job.identifier);
  emit('job', job);
}

function applyRemoved(identifier) {
  state.active.delete(identifier);
  emit('job-removed', identifier);
}

function applyProject(event) {
  if (event.action === 'removed') state.projects.delete(event.name);
  else state.projects.set(event.name, event.spiders || []);
  emit('projects', event);
}

function handle(kind, data) {
  if (buffered && kind !== 'status') {
    buffered.push([kind, data]);
    return;
  }
  if (kind === 'status') applyStatus(data);
  else if (kind === 'job') applyJob(data);
  else if (kind === 'job-removed') applyRemoved(data.identifier);
  else if (kind === 'project') applyProject(data);
}

/** Load projects (with spiders) and active jobs; events that arrive meanwhile are applied after. */
export function reload() {
  if (loading) return loading;
  buffered = [];
  loading = (async () => {
    try {
      const [names, jobs] = await Promise.all([api.listProjects(), api.listJobs({status: 'ACTIVE'})]);
      const spiders = await Promise.all(names.map((n) => api.listSpiders(n).catch(() => [])));
      state.projects = new Map(names.map((n, i) => [n, spiders[i]]));
      state.active = new Map(jobs.map((j) => [j.identifier, j]));
      state.loaded = true;
    } catch (err) {
      console.error('loading projects and jobs failed', err);
    } finally {
      const pending = buffered;
      buffered = null;
      loading = null;
      for (const [kind, data] of pending) handle(kind, data);
      emit('reset');
    }
  })();
  return loading;
}

export function connect(afterDrop = false) {
  if (source) return;
  let dropped = afterDrop;
  source = new EventSource('/events');
  source.addEventListener('open', () => {
    setConnection('live');
    if (dropped) reload();
    dropped = false;
  });
  source.addEventListener('error', () => {
    dropped = true;
    if (source.readyState === EventSource.CLOSED) {
      // The browser gave up (e.g. the daemon answered with an error): try again later.
      setConnection('down');
      source.close();
      source = null;
      setTimeout(() => connect(true), 3000);
    } else {
      setConnection('connecting');
    }
  });
  for (const kind of ['status', 'job', 'job-removed', 'project']) {
    source.addEventListener(kind, (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      handle(kind, data);
    });
  }
  if (!afterDrop) reload();
}
