// What every view shares: the daemon status, the projects and the active jobs,
// kept current by the /events stream (see events.js). Views subscribe to changes.

export const ACTIVE = ['SCHEDULED', 'PENDING', 'RUNNING'];
export const COMPLETED = ['SUCCESSFUL', 'FAILED', 'CANCELED'];
export const STATUSES = [...ACTIVE, ...COMPLETED];

export const state = {
  status: null,          // the last status.json object
  clockOffset: 0,        // server clock - browser clock (ms, see format.js)
  serverDate: "",        // the daemon's date (YYYY-MM-DD in its zone) when status.time was sent
  serverOffset: 0,       // the daemon's UTC offset in minutes, from status.time (see format.serverToday)
  statusAt: 0,           // Date.now() when `status` arrived
  projects: new Map(),   // name -> [spider, ...]
  active: new Map(),     // identifier -> job dict, for SCHEDULED, PENDING and RUNNING jobs
  loaded: false,         // projects and active jobs have been loaded once
  connection: 'connecting', // 'live' | 'connecting' | 'down'
};

const listeners = new Set();

/** fn(kind, data) for kind in status | job | job-removed | projects | connection | reset */
export function subscribe(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function emit(kind, data) {
  for (const fn of [...listeners]) {
    try {
      fn(kind, data);
    } catch (err) {
      console.error('listener failed on', kind, err);
    }
  }
}

export function isActive(job) {
  return ACTIVE.includes(job.status);
}

/** Active jobs, newest first, optionally filtered. */
export function activeJobs({project, spider, status, parent} = {}) {
  return [...state.active.values()]
    .filter((j) => (!project || j.project === project) && (!spider || j.spider === spider) &&
      (!status || j.status === status) && (!parent || j.parent === parent))
    .sort((a, b) => (a.timestamp < b.timestamp ? 1 : a.timestamp > b.timestamp ? -1 : 0));
}

export function projectNames() {
  return [...state.projects.keys()].sort();
}

export function allSpiders() {
  return [...new Set([...state.projects.values()].flat())].sort();
}
