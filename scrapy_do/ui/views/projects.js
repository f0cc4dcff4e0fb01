// Projects: push an archive, see each project's spiders and jobs, remove a project.

import {api} from '../api.js';
import {fill, h} from '../dom.js';
import {activeJobs, projectNames, state, subscribe} from '../state.js';

export const title = 'Projects';

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
      'Running crawls finish; pending jobs of the project will fail. Job history and logs are kept.');
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
      h('div', {class: 'project-actions'},
        h('a', {class: 'button', href: `#/schedule?project=${q}`}, 'Schedule'),
        h('a', {class: 'button', href: `#/jobs?project=${q}`}, 'Jobs'),
        h('button', {type: 'button', class: 'danger-outline', 'data-testid': 'remove-project',
          onclick: () => askRemove(name)}, 'Remove')));
  }

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
  const off = subscribe((kind) => {
    if (['projects', 'reset', 'job', 'job-removed'].includes(kind)) renderList();
  });
  return () => { off(); if (dialog.open) dialog.close(); };
}
