// Scrapy Do dashboard: hash routes, one live event stream, one view at a time.
//   #/dashboard  #/projects  #/jobs?project=&spider=&status=&page=
//   #/schedule?project=&spider=  #/job/<job-id>  #/log/<job-id>/<out|err>

import {h} from './dom.js';
import {connect} from './events.js';
import {syncTicker} from './components.js';
import {state, subscribe} from './state.js';
import * as dashboard from './views/dashboard.js';
import * as projects from './views/projects.js';
import * as jobs from './views/jobs.js';
import * as schedule from './views/schedule.js';
import * as log from './views/log.js';
import * as job from './views/job.js';

const views = {dashboard, projects, jobs, schedule, log, job};
const main = document.getElementById('main');
let unmount = null;

export function parseHash(hash = location.hash) {
  const raw = hash.replace(/^#\/?/, '');
  const [path, search = ''] = raw.split('?');
  const parts = path.split('/').filter(Boolean).map((p) => decodeURIComponent(p));
  return {name: parts[0] || 'dashboard', args: parts.slice(1), query: new URLSearchParams(search)};
}

function render() {
  if (unmount) {
    try { unmount(); } catch (err) { console.error(err); }
    unmount = null;
  }
  const route = parseHash();
  const view = views[route.name];
  main.replaceChildren();
  main.dataset.view = view ? route.name : 'not-found';
  for (const a of document.querySelectorAll('#nav a')) {
    const current = a.dataset.route === route.name || (['log', 'job'].includes(route.name) && a.dataset.route === 'jobs');
    a.classList.toggle('active', current);
    if (current) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  if (!view) {
    main.append(h('section', {class: 'card'}, h('h1', null, 'Not found'),
      h('p', null, 'No such page. ', h('a', {href: '#/dashboard'}, 'Go to the dashboard'), '.')));
    document.title = 'Not found · Scrapy Do';
    return;
  }
  document.title = `${view.title || route.name} · Scrapy Do`;
  unmount = view.mount(main, route) || null;
}

function showConnection() {
  const el = document.getElementById('conn');
  el.dataset.state = state.connection;
  el.querySelector('.conn-text').textContent =
    {live: 'live', connecting: 'connecting…', down: 'offline'}[state.connection] || state.connection;
  el.title = state.connection === 'live' ? 'Receiving live updates from the daemon'
    : 'Not connected to the daemon; retrying';
}

subscribe((kind) => {
  if (kind === 'connection') showConnection();
  // Running jobs' durations count up once a second, only while a job runs or waits.
  if (kind === 'job' || kind === 'job-removed' || kind === 'reset') syncTicker();
});
window.addEventListener('hashchange', render);
connect();
render();
