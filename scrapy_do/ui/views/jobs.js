// Jobs: active jobs (live from the event stream) and the completed history
// (paged on the server), with project / spider / status filters, and the runs
// of one SCHEDULED job (?parent=). SCHEDULED jobs can be paused, resumed, edited
// (in the schedule form) and canceled; every change shows up through /events.

import {api} from '../api.js';
import {cancelButton, descriptionCell, editLink, emptyRow, jobDuration, logLinks, pauseResumeButton, runsLink,
  spiderCell, statusCell, timeCell} from '../components.js';
import {debounce, fill, h, select} from '../dom.js';
import {shortId} from '../format.js';
import {ACTIVE, COMPLETED, STATUSES, activeJobs, allSpiders, projectNames, state, subscribe} from '../state.js';

export const title = 'Jobs';
const PAGE = 20;

function actions(job, active) {
  if (!active) return logLinks(job);
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
    h('td', {class: 'num'}, jobDuration(job)),
    h('td', {class: 'num'}, active ? null : (job['exit-code'] ?? '—')),
    h('td', {class: 'row-actions'}, actions(job, active)));
}

function table(testid, rows, active, empty) {
  const head = ['Status', 'Actor', 'Spider', 'Description', active ? 'Created / started' : 'Started',
    active ? 'Elapsed' : 'Duration', active ? '' : 'Exit', ''];
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
  let completed = [];
  let hasNext = false;
  let total = 0;
  let loadError = null;
  let controller = null;

  const filterBox = h('form', {class: 'filters', 'data-testid': 'job-filters', onsubmit: (e) => e.preventDefault()});
  const activeBox = h('div');
  const completedBox = h('div');
  const activeSection = h('section', {class: 'card', 'data-testid': 'active-section'},
    h('div', {class: 'card-head'}, h('h2', null, 'Active'),
      h('span', {class: 'muted small'}, 'scheduled, pending and running')), activeBox);
  const completedSection = h('section', {class: 'card', 'data-testid': 'completed-section'},
    h('div', {class: 'card-head'}, h('h2', null, 'Completed'),
      h('span', {class: 'muted small'}, 'successful, failed and canceled; newest first')), completedBox);

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
    fill(completedBox,
      loadError ? h('p', {class: 'error', role: 'alert'}, loadError) : null,
      table('completed-jobs', completed.map((j) => row(j, false)), false, 'No completed jobs.'),
      (page > 0 || hasNext) ? pager('completed-pager', page, hasNext, completed.length, (p) => {
        page = p; updateUrl(); loadCompleted();
      }, total) : null);
  };

  const loadCompleted = async () => {
    if (filters.status && !COMPLETED.includes(filters.status)) {
      renderCompleted();
      return;
    }
    controller?.abort();
    controller = new AbortController();
    try {
      const body = await api.listJobsPage({status: filters.status || 'COMPLETED', project: filters.project,
        spider: filters.spider, parent: filters.parent, limit: PAGE, offset: page * PAGE}, controller.signal);
      total = body.total;
      completed = body.jobs;
      hasNext = page * PAGE + completed.length < total;
      loadError = null;
      if (!completed.length && page > 0) {
        page -= 1;
        updateUrl();
        loadCompleted();
        return;
      }
    } catch (err) {
      if (err.name === 'AbortError') return;
      loadError = err.message;
    }
    renderCompleted();
  };
  const refreshCompleted = debounce(loadCompleted, 200);

  root.append(h('div', {class: 'page-head'}, h('h1', null, 'Jobs'),
    h('div', {class: 'actions'}, h('a', {class: 'button primary', href: '#/schedule'}, 'Schedule a job'))),
  filterBox, activeSection, completedSection);
  renderFilters();
  renderActive();
  renderCompleted();
  loadCompleted();

  const off = subscribe((kind, data) => {
    if (kind === 'projects' || kind === 'reset' || (kind === 'job' && filters.parent &&
        data.identifier === filters.parent)) renderFilters();
    if (kind === 'job' || kind === 'job-removed' || kind === 'reset') renderActive();
    if (kind === 'reset' || kind === 'job-removed' || (kind === 'job' && COMPLETED.includes(data.status))) {
      refreshCompleted();
    }
  });
  return () => { off(); refreshCompleted.cancel(); controller?.abort(); };
}
