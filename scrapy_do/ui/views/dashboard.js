// Dashboard: daemon status and counters, running and pending jobs (with their live counts), the last completed ones
// (last finished first: loaded once, then kept current from the event stream, see history.js), and the webhooks
// with their newest deliveries (see webhooks.js).

import {cancelButton, descriptionCell, emptyRow, jobDuration, logLinks, progressCell, runAgainButton, spiderCell,
  statusBadge, statusCell, timeCell} from '../components.js';
import {debounce, fill, h} from '../dom.js';
import {formatDuration, serverToday, shortTime} from '../format.js';
import {loadCompleted, matches, upsert, without} from '../history.js';
import {activeJobs, state, subscribe} from '../state.js';
import {webhooksCard} from '../webhooks.js';

export const title = 'Dashboard';
const RECENT = 5;

function stat(label, value, testid, extra) {
  return h('div', {class: 'stat', 'data-testid': testid},
    h('div', {class: 'stat-label'}, label),
    h('div', {class: 'stat-value', 'data-testid': `${testid}-value`}, value),
    extra ? h('div', {class: 'stat-extra muted small'}, extra) : null);
}

function renderStatus(box) {
  const s = state.status;
  if (!s) {
    fill(box, h('p', {class: 'muted'}, 'Waiting for the daemon…'));
    return;
  }
  const slots = s['job-slots'] || 0;
  const running = s['jobs-running'] || 0;
  const pct = slots ? Math.min(100, Math.round((running / slots) * 100)) : 0;
  const uptime = h('span', {'data-uptime': ''}, formatDuration(s['uptime-seconds']));
  const problem = s['launch-problem'];
  fill(box,
    problem ? h('div', {class: 'launch-problem', role: 'alert', 'data-testid': 'launch-problem'},
      h('strong', null, 'Jobs wait: '), problem,
      h('span', {class: 'muted small'}, ' — tried again automatically; they start once this is fixed.')) : null,
    h('div', {class: 'stats-grid'},
      stat('Version', s['daemon-version'] || '?', 'stat-version', `${s.hostname || ''} · ${s.timezone || ''}`),
      stat('Uptime', uptime, 'stat-uptime', `server time ${shortTime(s.time)}`),
      stat('Memory', `${Number(s['memory-usage'] || 0).toFixed(1)} MiB`, 'stat-memory', 'daemon process'),
      stat('CPU', `${Number(s['cpu-usage'] || 0).toFixed(1)} %`, 'stat-cpu', 'daemon process'),
      stat('Warm parents', s['warm-start'] === 'off' ? 'off' : String(s['warm-parents'] ?? 0), 'stat-warm',
        s['warm-start'] === 'off' ? 'every crawl starts cold' : `${Number(s['warm-memory'] || 0).toFixed(1)} MiB`),
      stat('Job slots', `${running} / ${slots}`, 'stat-slots',
        h('div', {class: 'meter', role: 'meter', 'aria-valuenow': running, 'aria-valuemin': 0, 'aria-valuemax': slots},
          h('div', {class: 'meter-fill', style: {width: `${pct}%`}}))),
      stat('Pending', String(s['jobs-pending'] ?? 0), 'stat-queue',
        `${s['jobs-scheduled'] ?? 0} scheduled`)),
    h('div', {class: 'counters'},
      counter('Run', s['jobs-run'], 'stat-jobs-run', ''),
      counter('Successful', s['jobs-successful'], 'stat-jobs-successful', 'ok'),
      counter('Failed', s['jobs-failed'], 'stat-jobs-failed', 'bad'),
      counter('Canceled', s['jobs-canceled'], 'stat-jobs-canceled', 'off')));
}

function counter(label, value, testid, tone) {
  return h('div', {class: ['counter', tone], 'data-testid': testid},
    h('span', {class: 'counter-value', 'data-testid': `${testid}-value`}, String(value ?? 0)),
    h('span', {class: 'counter-label'}, label));
}

function activeRow(job) {
  return h('tr', {'data-testid': 'job-row', 'data-job-id': job.identifier, 'data-status': job.status},
    h('td', null, statusBadge(job.status)),
    h('td', null, spiderCell(job)),
    h('td', {class: 'desc'}, descriptionCell(job)),
    h('td', null, timeCell(job.started || job.timestamp)),
    h('td', {class: 'num'}, jobDuration(job)),
    h('td', {class: 'progress'}, progressCell(job)),
    h('td', {class: 'row-actions'}, logLinks(job), cancelButton(job)));
}

function completedRow(job) {
  return h('tr', {'data-testid': 'job-row', 'data-job-id': job.identifier, 'data-status': job.status},
    h('td', null, statusCell(job)),
    h('td', null, spiderCell(job)),
    h('td', {class: 'desc'}, descriptionCell(job)),
    h('td', null, timeCell(job.finished || job.timestamp)),
    h('td', {class: 'num'}, jobDuration(job)),
    h('td', {class: 'row-actions'}, logLinks(job), runAgainButton(job)));
}

function table(testid, head, rows, empty) {
  return h('div', {class: 'table-wrap'},
    h('table', {class: 'jobs', 'data-testid': testid},
      h('thead', null, h('tr', null, head.map((c) => h('th', {class: /Elapsed|Duration/.test(c) ? 'num' : null}, c)))),
      h('tbody', null, rows.length ? rows : emptyRow(head.length, empty, `${testid}-empty`))));
}

export function mount(root) {
  const statusBox = h('section', {class: 'card', 'data-testid': 'status-panel', 'aria-label': 'Daemon status'});
  const activeBox = h('div');
  const recentBox = h('div');
  const hooksBox = h('section', {class: 'card', 'data-testid': 'webhooks-panel', 'aria-label': 'Webhooks'});
  let recent = [];

  root.append(
    h('div', {class: 'page-head'},
      h('h1', null, 'Dashboard'),
      h('div', {class: 'actions'},
        h('a', {class: 'button primary', href: '#/schedule', 'data-testid': 'dash-schedule'}, 'Schedule a job'),
        h('a', {class: 'button', href: '#/projects'}, 'Push a project'))),
    statusBox,
    h('section', {class: 'card'},
      h('div', {class: 'card-head'}, h('h2', null, 'Running and pending'),
        h('a', {href: '#/jobs', class: 'small'}, 'all jobs →')),
      activeBox),
    h('section', {class: 'card'},
      h('div', {class: 'card-head'}, h('h2', null, 'Recently completed'),
        h('a', {href: '#/jobs', class: 'small'}, 'history →')),
      recentBox),
    hooksBox);

  const renderActive = () => {
    const jobs = activeJobs().filter((j) => j.status !== 'SCHEDULED')
      .sort((a, b) => (a.status === b.status ? 0 : a.status === 'RUNNING' ? -1 : 1));
    const schedules = activeJobs({status: 'SCHEDULED'});
    const scheduled = schedules.length;
    const paused = schedules.filter((j) => j.paused).length;
    fill(activeBox,
      table('dashboard-active', ['Status', 'Spider', 'Description', 'Started', 'Elapsed', 'Progress', 'Logs'],
        jobs.map(activeRow), state.loaded ? 'Nothing is running or waiting.' : 'Loading…'),
      scheduled ? h('p', {class: 'muted small footnote'},
        `${scheduled} scheduled job${scheduled === 1 ? '' : 's'} will spawn runs at their times`,
        paused ? ` (${paused} paused: not until resumed)` : '', '. ',
        h('a', {href: '#/jobs?status=SCHEDULED'}, 'See them')) : null);
  };
  const renderRecent = () => {
    fill(recentBox, table('dashboard-recent', ['Status', 'Spider', 'Description', 'Finished', 'Duration', ''],
      recent.slice(0, RECENT).map(completedRow), recentLoaded ? 'No job has completed yet.' : 'Loading…'));
    hooks?.render();  // the deliveries name the jobs the page knows
  };

  // The completed jobs, last finished first: all of them when they fit in one answer (else the newest
  // submitted, see history.js); then each job that completes goes in its place from its event.
  let recentLoaded = false;
  let complete = false;
  let controller = null;
  let queued = null;      // events that arrive while loading
  const applyRecent = (kind, data) => {
    if (kind === 'job' && matches(data)) recent = upsert(recent, data);
    else if (kind === 'job-removed') recent = without(recent, data);
    else return false;
    return true;
  };
  const loadRecent = async () => {
    controller?.abort();
    const mine = controller = new AbortController();
    queued = [];
    try {
      const loaded = await loadCompleted({}, mine.signal);
      recent = loaded.jobs;
      complete = loaded.complete;
      for (const [kind, data] of queued) applyRecent(kind, data);
      recentLoaded = true;
      renderRecent();
    } catch (err) {
      if (err.name !== 'AbortError') fill(recentBox, h('p', {class: 'error'}, err.message));
    } finally {
      if (controller === mine) queued = null;
    }
  };
  const reloadRecent = debounce(loadRecent, 200);

  // Uptime counts on from the last status: once a second in its first hour, then once a minute.
  let uptimeTimer = null;
  const showUptime = () => {
    clearTimeout(uptimeTimer);
    const el = statusBox.querySelector('[data-uptime]');
    if (!el || !state.status) return;
    const seconds = state.status['uptime-seconds'] + (Date.now() - state.statusAt) / 1000;
    el.textContent = formatDuration(seconds);
    const step = seconds < 3600 ? 1 : seconds < 86400 ? 60 : 3600;
    uptimeTimer = setTimeout(showUptime, (step - (seconds % step)) * 1000 + 20);
  };

  // Times show the date when they are not of the daemon's today: redraw when the day changes.
  let today = serverToday();
  const dayChanged = () => {
    const now = serverToday();
    if (now === today) return false;
    today = now;
    return true;
  };

  // A delivery's job is named by its spider when the page has the job: active, or among the completed loaded.
  const jobName = (id) => (state.active.get(id) || recent.find((j) => j.identifier === id))?.spider || null;
  let hooks = null;
  renderStatus(statusBox);
  showUptime();
  renderActive();
  renderRecent();
  loadRecent();
  hooks = webhooksCard(hooksBox, jobName);

  const off = subscribe((kind, data) => {
    if (kind === 'status') {
      renderStatus(statusBox);
      showUptime();
      if (dayChanged()) { renderActive(); renderRecent(); }
    }
    if (kind === 'job' || kind === 'job-removed' || kind === 'reset') renderActive();
    if (kind === 'reset') reloadRecent();
    else if (queued) queued.push([kind, data]);
    else if (applyRecent(kind, data)) {
      renderRecent();
      // Fewer than shown after a purge, with more on the daemon than were loaded: load again.
      if (!complete && kind === 'job-removed' && recent.length < RECENT) reloadRecent();
    }
  });
  return () => { off(); hooks.stop(); reloadRecent.cancel(); controller?.abort(); clearTimeout(uptimeTimer); };
}
