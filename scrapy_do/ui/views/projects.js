// Projects: push an archive, see each project's spiders, jobs and data files (what its
// crawls wrote, as downloads), remove a project.

import {api, dataUrl} from '../api.js';
import {timeCell} from '../components.js';
import {debounce, fill, h} from '../dom.js';
import {formatBytes} from '../format.js';
import {COMPLETED, activeJobs, projectNames, state, subscribe} from '../state.js';

export const title = 'Projects';

const FEW = 10;   // data files shown per project until "show all"

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
    fill(pushResult, h('p', {class: 'muted'}, `Uploading ${file.name} and listing its spiders…`));
    try {
      const body = await api.pushProject(file);
      state.projects.set(body.name, body.spiders);
      renderList();
      refreshData([body.name]);
      fill(pushResult, h('p', {class: 'success', 'data-testid': 'push-success'},
        'Pushed ', h('strong', null, body.name), ` with ${body.spiders.length} spider${body.spiders.length === 1 ? '' : 's'}: `,
        body.spiders.join(', '), '. ',
        h('a', {href: `#/schedule?project=${encodeURIComponent(body.name)}`}, 'Schedule a job →')));
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
    'The daemon runs ', h('code', null, 'scrapy list'), ' on it, so this can take a few seconds.'));

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
  const off = subscribe((kind, event) => {
    if (['projects', 'reset', 'job', 'job-removed'].includes(kind)) renderList();
    if (kind === 'reset') refreshData(projectNames());
    else if (kind === 'projects') refreshData([event.name]);
    else if (kind === 'job' && COMPLETED.includes(event.status)) refreshData([event.project]);
  });
  return () => { off(); reloadData.cancel(); controller.abort(); if (dialog.open) dialog.close(); };
}
