// Jobs: active jobs (live from the event stream) and the completed history, last
// finished first (see history.js: loaded whole when it fits in one answer and kept
// current from the event stream, else paged on the server and sorted within each
// page), with project / spider / status filters, and the runs of one SCHEDULED job
// (?parent=). SCHEDULED jobs can be paused, resumed, edited (in the schedule form)
// and canceled, completed ones run again; every change shows up through /events.

import {cancelButton, descriptionCell, editLink, emptyRow, jobDuration, logLinks, pauseResumeButton, progressCell,
  runAgainButton, runsLink, spiderCell, statusCell, timeCell} from '../components.js';
import {debounce, fill, h, select} from '../dom.js';
import {serverToday, shortId} from '../format.js';
import {loadCompleted as loadAll, loadPage, matches, upsert, without} from '../history.js';
import {ACTIVE, COMPLETED, STATUSES, activeJobs, allSpiders, projectNames, state, subscribe} from '../state.js';

export const title = 'Jobs';
const PAGE = 20;

function actions(job, active) {
  if (!active) return [logLinks(job), runAgainButton(job)];
  if (job.status === 'SCHEDULED') return [runsLink(job), pauseResumeButton(job), editLink(job), cancelButton(job)];
  return [logLinks(job), cancelButton(job)];
}

function row(job, active) {
  return h('tr', {'data-testid': 'job-row', 'data-job-id': job.identifier, 'data-status': job.status,
    'data-paused': job.paused ? 'true' : null},
    h('td', null, statusCell(job)),
    h('td', {class: 'actor-cell'}, h('span', {class: 'small actor'}, job.actor)),
    h('td', null, spiderCell(job)),
    h('td', {class: 'desc'}, descriptionCell(job)),
    h('td', null, timeCell(job.started || job.timestamp)),
    active ? null : h('td', {'data-testid': 'job-finished'}, timeCell(job.finished)),
    h('td', {class: 'num'}, jobDuration(job)),
    active ? h('td', {class: 'progress'}, progressCell(job)) : h('td', {class: 'num'}, job['exit-code'] ?? '—'),
    h('td', {class: 'row-actions'}, actions(job, active)));
}

function table(testid, rows, active, empty) {
  const head = active
    ? ['Status', 'Actor', 'Spider', 'Description', 'Created / started', 'Elapsed', 'Progress', '']
    : ['Status', 'Actor', 'Spider', 'Description', 'Started', 'Finished', 'Duration', 'Exit', ''];
  return h('div', {class: 'table-wrap'},
    h('table', {class: 'jobs', 'data-testid': testid},
      h('thead', null, h('tr', null, head.map((c) => h('th', {class: /Elapsed|Duration|Exit/.test(c) ? 'num' : null}, c)))),
      h('tbody', null, rows.length ? rows : emptyRow(head.length, empty, `${testid}-empty`))));
}

function pager(testid, page, hasNext, count, onPage, total) {
  const from = count ? page * PAGE + 1 : 0;
  return h('div', {class: 'pager', 'data-testid': testid},
    h('button', {type: 'button', class: 'small', 'data-testid': `${testid}-prev`, disabled: page === 0,
      onclick: () => onPage(page - 1)}, '← Newer'),
    h('span', {class: 'muted small', 'data-testid': `${testid}-info`},
      count ? `${from}–${from + count - 1}` : 'none', total !== undefined ? ` of ${total}` : '', ` · page ${page + 1}`),
    h('button', {type: 'button', class: 'small', 'data-testid': `${testid}-next`, disabled: !hasNext,
      onclick: () => onPage(page + 1)}, 'Older →'));
}

export function mount(root, route) {
  const q = route.query;
  const filters = {project: q.get('project') || '', spider: q.get('spider') || '',
    status: (q.get('status') || '').toUpperCase(), parent: q.get('parent') || ''};
  let page = Math.max(0, (parseInt(q.get('page'), 10) || 1) - 1);
  let activePage = 0;
  // The completed list: 'all' holds every matching completed job (sorted, paged here, kept
  // current from events); 'pages' holds one page of the API's (sorted within the page);
  // null: not known yet (the next load tries 'all').
  let mode = null;
  let allCompleted = []; // mode 'all': every matching completed job, last finished first
  let completed = [];    // the jobs shown
  let hasNext = false;
  let total = 0;
  let loadError = null;
  let controller = null;
  let queued = null;     // events that arrive while loading

  const filterBox = h('form', {class: 'filters', 'data-testid': 'job-filters', onsubmit: (e) => e.preventDefault()});
  const activeBox = h('div');
  const completedBox = h('div');
  const activeSection = h('section', {class: 'card', 'data-testid': 'active-section'},
    h('div', {class: 'card-head'}, h('h2', null, 'Active'),
      h('span', {class: 'muted small'}, 'scheduled, pending and running')), activeBox);
  const completedSection = h('section', {class: 'card', 'data-testid': 'completed-section'},
    h('div', {class: 'card-head'}, h('h2', null, 'Completed'),
      h('span', {class: 'muted small', 'data-testid': 'completed-order'}, 'successful, failed and canceled')),
    completedBox);

  const updateUrl = () => {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(filters)) if (v) params.set(k, v);
    if (page) params.set('page', String(page + 1));
    const s = params.toString();
    history.replaceState(null, '', `#/jobs${s ? `?${s}` : ''}`);
  };

  // ?parent=: the runs one SCHEDULED job spawned.
  const parentChip = () => {
    const schedule = state.active.get(filters.parent);
    return h('span', {class: 'parent-filter small', 'data-testid': 'filter-parent'}, 'Runs of ',
      h('code', {title: filters.parent}, shortId(filters.parent)),
      schedule ? h('span', {class: 'schedule'}, ` ⟳ ${schedule.schedule}`) : null);
  };

  const renderFilters = () => {
    const projects = projectNames();
    if (filters.project && !projects.includes(filters.project)) projects.push(filters.project);
    const spiders = filters.project ? [...(state.projects.get(filters.project) || [])] : allSpiders();
    if (filters.spider && !spiders.includes(filters.spider)) spiders.push(filters.spider);
    const change = (key) => (event) => {
      filters[key] = event.target.value;
      if (key === 'project') filters.spider = '';
      page = 0;
      activePage = 0;
      mode = null;
      updateUrl();
      renderFilters();
      renderActive();
      loadCompleted();
    };
    fill(filterBox,
      h('label', null, 'Project', select({'data-testid': 'filter-project', onchange: change('project')},
        [['', 'All projects'], ...projects], filters.project)),
      h('label', null, 'Spider', select({'data-testid': 'filter-spider', onchange: change('spider')},
        [['', 'All spiders'], ...spiders], filters.spider)),
      h('label', null, 'Status', select({'data-testid': 'filter-status', onchange: change('status')},
        [['', 'Any status'], ...STATUSES], filters.status)),
      filters.parent ? parentChip() : null,
      (filters.project || filters.spider || filters.status || filters.parent) ? h('button', {type: 'button',
        class: 'link small', 'data-testid': 'filter-clear', onclick: () => {
          filters.project = filters.spider = filters.status = filters.parent = '';
          page = activePage = 0;
          mode = null;
          updateUrl(); renderFilters(); renderActive(); loadCompleted();
        }}, 'clear filters') : null);
  };

  const renderActive = () => {
    const show = !filters.status || ACTIVE.includes(filters.status);
    activeSection.hidden = !show;
    if (!show) return;
    const jobs = activeJobs(filters);
    const pages = Math.max(1, Math.ceil(jobs.length / PAGE));
    activePage = Math.min(activePage, pages - 1);
    const slice = jobs.slice(activePage * PAGE, (activePage + 1) * PAGE);
    fill(activeBox,
      table('active-jobs', slice.map((j) => row(j, true)), true,
        state.loaded ? 'No active jobs.' : 'Loading…'),
      jobs.length > PAGE ? pager('active-pager', activePage, activePage < pages - 1, slice.length,
        (p) => { activePage = p; renderActive(); }) : null);
  };

  const renderCompleted = () => {
    const show = !filters.status || COMPLETED.includes(filters.status);
    completedSection.hidden = !show;
    if (!show) return;
    if (mode === 'all') {
      total = allCompleted.length;
      const pages = Math.max(1, Math.ceil(total / PAGE));
      if (page > pages - 1) {
        page = pages - 1;
        updateUrl();
      }
      completed = allCompleted.slice(page * PAGE, (page + 1) * PAGE);
      hasNext = (page + 1) * PAGE < total;
    }
    completedSection.querySelector('[data-testid="completed-order"]').textContent = mode === 'pages'
      ? 'successful, failed and canceled; pages in order of submission, newest first, each page last finished first'
      : 'successful, failed and canceled; last finished first';
    fill(completedBox,
      loadError ? h('p', {class: 'error', role: 'alert'}, loadError) : null,
      table('completed-jobs', completed.map((j) => row(j, false)), false, 'No completed jobs.'),
      (page > 0 || hasNext) ? pager('completed-pager', page, hasNext, completed.length, (p) => {
        page = p;
        updateUrl();
        if (mode === 'all') renderCompleted();
        else loadCompleted();
      }, total) : null);
  };

  /** A completed job's event, or a purge: in place when all are loaded, else the page is loaded again. */
  const applyCompleted = (kind, data) => {
    if (mode !== 'all') {
      refreshCompleted();
      return;
    }
    if (kind === 'job' && matches(data, filters)) allCompleted = upsert(allCompleted, data);
    else if (kind === 'job-removed') allCompleted = without(allCompleted, data);
    else return;
    renderCompleted();
  };

  const loadCompleted = async () => {
    if (filters.status && !COMPLETED.includes(filters.status)) {
      renderCompleted();
      return;
    }
    controller?.abort();
    const mine = controller = new AbortController();
    queued = [];
    try {
      if (mode !== 'pages') {
        // All of them, if they fit in one answer.
        const loaded = await loadAll(filters, mine.signal);
        mode = loaded.complete ? 'all' : 'pages';
        if (mode === 'all') allCompleted = loaded.jobs;
      }
      if (mode === 'pages') {
        const body = await loadPage(filters, page * PAGE, PAGE, mine.signal);
        total = body.total;
        completed = body.jobs;
        hasNext = page * PAGE + completed.length < total;
        if (!completed.length && page > 0) {
          page -= 1;
          updateUrl();
          queued = null;
          loadCompleted();
          return;
        }
      }
      loadError = null;
    } catch (err) {
      if (err.name === 'AbortError') return;
      loadError = err.message;
    }
    const pending = queued || [];
    queued = null;
    renderCompleted();
    for (const [kind, data] of pending) applyCompleted(kind, data);
  };
  const refreshCompleted = debounce(loadCompleted, 200);

  root.append(h('div', {class: 'page-head'}, h('h1', null, 'Jobs'),
    h('div', {class: 'actions'}, h('a', {class: 'button primary', href: '#/schedule'}, 'Schedule a job'))),
  filterBox, activeSection, completedSection);
  renderFilters();
  renderActive();
  renderCompleted();
  loadCompleted();

  // Times show the date when they are not of the daemon's today: redraw when the day changes.
  let today = serverToday();
  const off = subscribe((kind, data) => {
    if (kind === 'projects' || kind === 'reset' || (kind === 'job' && filters.parent &&
        data.identifier === filters.parent)) renderFilters();
    if (kind === 'job' || kind === 'job-removed' || kind === 'reset') renderActive();
    if (kind === 'reset') {
      // Reconnected: events may have been missed; the whole history may fit again (or not).
      mode = null;
      refreshCompleted();
    } else if (kind === 'job-removed' || (kind === 'job' && COMPLETED.includes(data.status))) {
      if (queued) queued.push([kind, data]);
      else applyCompleted(kind, data);
    }
    if (kind === 'status' && serverToday() !== today) {
      today = serverToday();
      renderActive();
      renderCompleted();
    }
  });
  return () => { off(); refreshCompleted.cancel(); controller?.abort(); };
}
