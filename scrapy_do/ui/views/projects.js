// Projects: push an archive, see each project's spiders, jobs, environment (what its
// requirements.txt installed, and the build's log) and data files (what its crawls wrote,
// as downloads), remove a project.

import {api, buildLogUrl, dataUrl} from '../api.js';
import {timeCell} from '../components.js';
import {debounce, fill, h} from '../dom.js';
import {formatBytes, formatSeconds, plural} from '../format.js';
import {COMPLETED, activeJobs, projectNames, state, subscribe} from '../state.js';

export const title = 'Projects';

const FEW = 10;   // data files shown per project until "show all"
const FEW_PACKAGES = 12;   // packages of an environment shown until "show all"

/** How the environment came to be: "built in 2.3 s" or "reused (same requirements)". */
function buildSummary(env) {
  return env.reused ? 'reused (an environment with the same requirements was already built)'
    : `built in ${formatSeconds(env.seconds)}`;
}

/** The link to an environment's build log (a new tab: the daemon serves it as plain text). */
function buildLogLink(name, env) {
  return h('a', {href: (env && env.log) || buildLogUrl(name), target: '_blank', rel: 'noopener',
    'data-testid': 'env-log', title: `The output of the build of ${name}'s environment`}, 'build log');
}

/**
 * A project's environment: its requirements, how it was built, its packages (those it holds over the
 * daemon's) and its build log; a quiet line without one. `env`: undefined (loading) | null | {error} | environment.
 */
function environment(name, env, all, showAll) {
  if (env === undefined) return null;
  if (env === null) {
    return h('p', {class: 'muted small', 'data-testid': 'no-environment'},
      "No requirements.txt: its crawls use the daemon's packages.");
  }
  if (env.error) return h('p', {class: 'muted small', 'data-testid': 'env-error'}, `Environment: ${env.error}`);
  const packages = env.packages || [];
  return h('div', {class: 'project-env', 'data-testid': 'project-environment'},
    h('p', {class: 'small'},
      h('strong', null, 'Environment'), ' · ',
      h('span', {'data-testid': 'env-requirements'}, plural(env.requirements, 'requirement')), ' · ',
      h('span', {'data-testid': 'env-build', class: 'muted'}, buildSummary(env)), ' · ',
      buildLogLink(name, env)),
    packages.length
      ? h('ul', {class: 'packages', 'data-testid': 'env-packages', 'aria-label': `Packages of ${name}'s environment`},
        (all ? packages : packages.slice(0, FEW_PACKAGES)).map((p) =>
          h('li', {'data-testid': 'env-package', 'data-package': p.name}, `${p.name}==${p.version}`)),
        !all && packages.length > FEW_PACKAGES ? h('li', null, h('button', {type: 'button', class: 'link small',
          'data-testid': 'env-show-all', onclick: showAll}, `show all ${packages.length}`)) : null)
      : h('p', {class: 'muted small', 'data-testid': 'env-no-packages'}, "No packages beyond the daemon's."));
}

/** What the push answer says of the environment: "1 requirement, built in 2.3 s", with the build log. */
function pushEnvironment(name, env) {
  if (!env) return null;
  return h('p', {class: 'small', 'data-testid': 'push-environment'},
    'Environment: ', plural(env.requirements, 'requirement'), ', ', buildSummary(env), ' (', buildLogLink(name, null), ').');
}

/** A project's data files as download links, or why there are none. `data`: {files, truncated} | {error} | null. */
function dataFiles(name, data, all, showAll) {
  if (!data) return h('p', {class: 'muted small', 'data-testid': 'data-loading'}, 'Looking for data files…');
  if (data.error) return h('p', {class: 'error small', 'data-testid': 'data-error'}, data.error);
  if (!data.files.length) return h('p', {class: 'muted small', 'data-testid': 'no-data-files'}, 'No data files yet.');
  return h('div', {class: 'table-wrap'},
    h('table', {class: 'grid data-files', 'data-testid': 'data-files'},
      h('thead', null, h('tr', null, h('th', null, 'Data file'), h('th', {class: 'num'}, 'Size'), h('th', null, 'Modified'))),
      h('tbody', null, (all ? data.files : data.files.slice(0, FEW)).map((f) => h('tr', {'data-path': f.path},
        h('td', {class: 'mono'}, h('a', {href: dataUrl(name, f.path), download: f.path.split('/').pop(),
          'data-testid': 'data-file', title: `Download ${f.path}`}, f.path)),
        h('td', {class: 'num'}, formatBytes(f.size)),
        h('td', null, timeCell(f.modified)))))),
    !all && data.files.length > FEW ? h('button', {type: 'button', class: 'link small', 'data-testid': 'data-show-all',
      onclick: showAll}, `show all ${data.files.length}`) : null,
    data.truncated ? h('p', {class: 'muted small', 'data-testid': 'data-truncated'},
      'The daemon lists only the first files.') : null);
}

export function mount(root) {
  const listBox = h('div', {class: 'project-list', 'data-testid': 'project-list'});
  const pushResult = h('div', {class: 'form-result', 'aria-live': 'polite'});
  const fileInput = h('input', {type: 'file', id: 'push-file', name: 'archive', accept: '.zip,application/zip',
    'data-testid': 'push-file', required: true});
  const pushButton = h('button', {type: 'submit', class: 'primary', 'data-testid': 'push-submit'}, 'Push');

  const form = h('form', {class: 'push-form', 'data-testid': 'push-form', onsubmit: async (event) => {
    event.preventDefault();
    const file = fileInput.files[0];
    if (!file) {
      fill(pushResult, h('p', {class: 'error', 'data-testid': 'push-error'}, 'Choose a .zip archive of a Scrapy project first.'));
      return;
    }
    pushButton.disabled = true;
    pushButton.textContent = 'Pushing…';
    fill(pushResult, h('p', {class: 'muted', 'data-testid': 'push-progress'},
      `Uploading ${file.name}, building its environment if it has a requirements.txt, and listing its spiders…`));
    try {
      const body = await api.pushProject(file);
      state.projects.set(body.name, body.spiders);
      renderList();
      refreshData([body.name]);
      refreshEnv([body.name]);
      fill(pushResult, h('div', {class: 'success', 'data-testid': 'push-success'},
        h('p', null, 'Pushed ', h('strong', null, body.name), ` with ${plural(body.spiders.length, 'spider')}: `,
          body.spiders.join(', '), '. ',
          h('a', {href: `#/schedule?project=${encodeURIComponent(body.name)}`}, 'Schedule a job →')),
        pushEnvironment(body.name, body.environment)));
      form.reset();
    } catch (err) {
      fill(pushResult, h('div', {class: 'error', role: 'alert', 'data-testid': 'push-error'},
        h('strong', null, 'Push failed: '), h('pre', {class: 'error-text'}, err.message)));
    } finally {
      pushButton.disabled = false;
      pushButton.textContent = 'Push';
    }
  }},
  h('label', {for: 'push-file'}, 'Project archive (.zip)'),
  h('div', {class: 'row'}, fileInput, pushButton),
  h('p', {class: 'muted small'},
    'Zip the project folder, the one that holds scrapy.cfg. A project with the same name is replaced. ',
    'With a ', h('code', null, 'requirements.txt'), ' beside scrapy.cfg, the daemon first installs it in an ',
    'environment of its own. Then it runs ', h('code', null, 'scrapy list'), ' on it, so this can take a few seconds.'));

  // The remove confirmation.
  const dialogMsg = h('p');
  const dialogError = h('div', {'aria-live': 'assertive'});
  const confirmButton = h('button', {type: 'button', class: 'danger', 'data-testid': 'remove-confirm'}, 'Remove');
  const dialog = h('dialog', {class: 'dialog', 'data-testid': 'remove-dialog'},
    h('h2', null, 'Remove project'), dialogMsg, dialogError,
    h('div', {class: 'dialog-actions'},
      h('button', {type: 'button', 'data-testid': 'remove-cancel', onclick: () => dialog.close()}, 'Keep it'),
      confirmButton));
  let removing = null;
  confirmButton.addEventListener('click', async () => {
    const name = removing;
    confirmButton.disabled = true;
    fill(dialogError);
    try {
      await api.removeProject(name);
      state.projects.delete(name);
      data.delete(name);
      envs.delete(name);
      renderList();
      dialog.close();
      fill(pushResult, h('p', {class: 'success', 'data-testid': 'remove-success'}, `Removed project ${name}.`));
    } catch (err) {
      fill(dialogError, h('div', {class: 'error', role: 'alert', 'data-testid': 'remove-error'},
        h('p', null, err.message),
        err.code === 409 ? h('p', null, h('a', {href: `#/jobs?project=${encodeURIComponent(name)}&status=SCHEDULED`,
          onclick: () => dialog.close()}, 'Show its scheduled jobs')) : null));
    } finally {
      confirmButton.disabled = false;
    }
  });
  const askRemove = (name) => {
    removing = name;
    fill(dialogError);
    fill(dialogMsg, 'Remove ', h('strong', null, name), '? Its archive and spiders are deleted from the daemon. ',
      "Running crawls finish; pending jobs of the project will fail. Job history, logs and the project's data files are kept (scrapy-do-cl remove-project --purge deletes the data files).");
    dialog.showModal();
    confirmButton.focus();
  };

  function projectCard(name) {
    const spiders = state.projects.get(name) || [];
    const jobs = activeJobs({project: name});
    const count = (status) => jobs.filter((j) => j.status === status).length;
    const q = encodeURIComponent(name);
    return h('article', {class: 'project', 'data-testid': 'project', 'data-project': name},
      h('div', {class: 'project-head'},
        h('h3', {'data-testid': 'project-name'}, name),
        h('span', {class: 'muted small'},
          `${spiders.length} spider${spiders.length === 1 ? '' : 's'} · ${count('RUNNING')} running · `,
          `${count('PENDING')} pending · ${count('SCHEDULED')} scheduled`)),
      h('ul', {class: 'chips', 'data-testid': 'project-spiders'},
        spiders.map((s) => h('li', null, h('a', {class: 'chip', 'data-testid': 'spider', title: `Schedule ${s}`,
          href: `#/schedule?project=${q}&spider=${encodeURIComponent(s)}`}, s)))),
      environment(name, envs.get(name), envsExpanded.has(name), () => { envsExpanded.add(name); renderList(); }),
      h('div', {class: 'project-data', 'data-testid': 'project-data'},
        dataFiles(name, data.get(name), expanded.has(name), () => { expanded.add(name); renderList(); })),
      h('div', {class: 'project-actions'},
        h('a', {class: 'button', href: `#/schedule?project=${q}`}, 'Schedule'),
        h('a', {class: 'button', href: `#/jobs?project=${q}`}, 'Jobs'),
        h('button', {type: 'button', class: 'danger-outline', 'data-testid': 'remove-project',
          onclick: () => askRemove(name)}, 'Remove')));
  }

  // Each project's data files: loaded once, again when one of its jobs ends (it may have written some).
  const data = new Map();       // name -> {files, truncated} | {error}
  const expanded = new Set();   // projects whose every listed file is shown
  const controller = new AbortController();
  const loadData = async (name) => {
    try {
      const body = await api.listData(name, controller.signal);
      data.set(name, {files: body.files || [], truncated: !!body.truncated});
    } catch (err) {
      if (err.name === 'AbortError') return;
      data.set(name, {error: err.message});
    }
    renderList();
  };
  const stale = new Set();
  const reloadData = debounce(() => {
    const names = [...stale];
    stale.clear();
    names.forEach(loadData);
  }, 300);
  const refreshData = (names) => {
    names.forEach((n) => stale.add(n));
    reloadData();
  };

  // Each project's environment: loaded once, again when the project is pushed (its ProjectPushed event).
  const envs = new Map();           // name -> environment | null | {error}
  const envsExpanded = new Set();   // projects whose every package is shown
  const loadEnv = async (name) => {
    try {
      envs.set(name, await api.projectEnvironment(name, controller.signal));
    } catch (err) {
      if (err.name === 'AbortError') return;
      if (err.code === 404) envs.delete(name);   // removed meanwhile (or a daemon without environments)
      else envs.set(name, {error: err.message});
    }
    renderList();
  };
  const staleEnvs = new Set();
  const reloadEnvs = debounce(() => {
    const names = [...staleEnvs];
    staleEnvs.clear();
    names.filter((n) => state.projects.has(n)).forEach(loadEnv);
  }, 300);
  const refreshEnv = (names) => {
    names.forEach((n) => staleEnvs.add(n));
    reloadEnvs();
  };

  function renderList() {
    const names = projectNames();
    if (!names.length) {
      fill(listBox, h('p', {class: 'muted', 'data-testid': 'no-projects'},
        state.loaded ? 'No projects yet. Push one above.' : 'Loading…'));
    } else {
      fill(listBox, names.map(projectCard));
    }
  }

  root.append(
    h('div', {class: 'page-head'}, h('h1', null, 'Projects')),
    h('section', {class: 'card'}, h('h2', null, 'Push a project'), form, pushResult),
    h('section', {class: 'card'}, h('h2', null, 'Projects on the daemon'), listBox),
    dialog);
  renderList();
  projectNames().forEach(loadData);
  projectNames().forEach(loadEnv);
  const off = subscribe((kind, event) => {
    if (kind === 'projects' && event.action === 'removed') { envs.delete(event.name); envsExpanded.delete(event.name); }
    if (['projects', 'reset', 'job', 'job-removed'].includes(kind)) renderList();
    if (kind === 'reset') { refreshData(projectNames()); refreshEnv(projectNames()); }
    else if (kind === 'projects') {
      refreshData([event.name]);
      if (event.action !== 'removed') refreshEnv([event.name]);
    } else if (kind === 'job' && COMPLETED.includes(event.status)) refreshData([event.project]);
  });
  return () => {
    off(); reloadData.cancel(); reloadEnvs.cancel(); controller.abort();
    if (dialog.open) dialog.close();
  };
}
