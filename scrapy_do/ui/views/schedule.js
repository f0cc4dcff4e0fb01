// Schedule a job: project and spider pickers, a scheduling spec checked live
// against /preview-schedule.json, a JSON payload checked before sending.

import {api} from '../api.js';
import {debounce, fill, h, select} from '../dom.js';
import {fullTime} from '../format.js';
import {projectNames, state, subscribe} from '../state.js';

export const title = 'Schedule';
const EXAMPLES = ['now', 'every 10 minutes', 'every hour at :15', 'every day at 10:30', 'every monday at 08:00'];

/** null if `text` is a JSON object (or empty), else the error to show. */
export function payloadError(text) {
  if (!text.trim()) return null;
  let value;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return `Not valid JSON: ${err.message}`;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return 'The payload must be a JSON object, like {"pages": 10}.';
  }
  return null;
}

export function mount(root, route) {
  const chosen = {project: route.query.get('project') || '', spider: route.query.get('spider') || ''};
  const projectBox = h('span');
  const spiderBox = h('span');
  const whenInput = h('input', {id: 'when', name: 'when', type: 'text', value: route.query.get('when') || 'now',
    autocomplete: 'off', spellcheck: 'false', 'data-testid': 'when', 'aria-describedby': 'when-preview'});
  const preview = h('div', {id: 'when-preview', class: 'preview', 'aria-live': 'polite', 'data-testid': 'when-preview'});
  const description = h('input', {id: 'description', name: 'description', type: 'text', maxlength: 500,
    placeholder: 'e.g. nightly refresh', 'data-testid': 'description'});
  const payload = h('textarea', {id: 'payload', name: 'payload', rows: 4, spellcheck: 'false',
    placeholder: '{"pages": 10}', 'data-testid': 'payload', 'aria-describedby': 'payload-error'});
  payload.value = '{}';
  const payloadMsg = h('div', {id: 'payload-error', 'aria-live': 'polite'});
  const submit = h('button', {type: 'submit', class: 'primary', 'data-testid': 'schedule-submit'}, 'Schedule');
  const result = h('div', {class: 'form-result', 'aria-live': 'polite', 'data-testid': 'schedule-result-box'});

  const renderPickers = () => {
    const projects = projectNames();
    if (!projects.length) {
      // Not loaded yet (or none): keep what the address asked for.
      fill(projectBox, h('span', {class: 'muted'}, state.loaded
        ? h('span', null, 'No projects. ', h('a', {href: '#/projects'}, 'Push one first.')) : 'Loading…'));
      fill(spiderBox, h('span', {class: 'muted'}, '—'));
      submit.disabled = true;
      return;
    }
    if (!projects.includes(chosen.project)) chosen.project = projects[0];
    const spiders = state.projects.get(chosen.project) || [];
    if (!spiders.includes(chosen.spider)) chosen.spider = spiders[0] || '';
    fill(projectBox, select({id: 'project', name: 'project', 'data-testid': 'project', onchange: (e) => {
      chosen.project = e.target.value;
      chosen.spider = '';
      renderPickers();
    }}, projects, chosen.project));
    fill(spiderBox, spiders.length
      ? select({id: 'spider', name: 'spider', 'data-testid': 'spider', onchange: (e) => { chosen.spider = e.target.value; }},
        spiders, chosen.spider)
      : h('span', {class: 'muted'}, '—'));
    submit.disabled = false;
  };

  // Live check of the spec: debounced, and a newer request cancels an older one.
  let previewController = null;
  const checkWhen = async () => {
    previewController?.abort();
    previewController = new AbortController();
    const when = whenInput.value.trim() || 'now';
    try {
      const body = await api.preview(when, 5, previewController.signal);
      whenInput.removeAttribute('aria-invalid');
      if (body.when === 'now') {
        fill(preview, h('p', {class: 'ok', 'data-testid': 'when-ok'}, 'Runs once, as soon as a job slot is free.'));
      } else {
        fill(preview, h('p', {class: 'ok', 'data-testid': 'when-ok'}, 'Valid: ', h('code', null, body.when),
          '. Next runs (the daemon\u2019s time zone):'),
        h('ol', {class: 'next-runs', 'data-testid': 'next-runs'}, body.next.map((t) => h('li', null, fullTime(t)))));
      }
    } catch (err) {
      if (err.name === 'AbortError') return;
      whenInput.setAttribute('aria-invalid', 'true');
      fill(preview, h('p', {class: 'error', 'data-testid': 'when-error'}, err.message));
    }
  };
  const checkWhenSoon = debounce(checkWhen, 250);
  whenInput.addEventListener('input', () => {
    fill(preview, h('p', {class: 'muted'}, 'Checking…'));
    checkWhenSoon();
  });

  const checkPayload = () => {
    const error = payloadError(payload.value);
    if (error) {
      payload.setAttribute('aria-invalid', 'true');
      fill(payloadMsg, h('p', {class: 'error', 'data-testid': 'payload-error'}, error));
    } else {
      payload.removeAttribute('aria-invalid');
      fill(payloadMsg);
    }
    return !error;
  };
  payload.addEventListener('input', debounce(checkPayload, 300));
  payload.addEventListener('blur', checkPayload);

  const form = h('form', {class: 'schedule-form', 'data-testid': 'schedule-form', novalidate: true,
    onsubmit: async (event) => {
      event.preventDefault();
      fill(result);
      if (!checkPayload()) {
        payload.focus();
        return;
      }
      submit.disabled = true;
      try {
        const when = whenInput.value.trim() || 'now';
        const body = await api.schedule({project: chosen.project, spider: chosen.spider, when,
          description: description.value, payload: payload.value.trim() || '{}'});
        const id = body.identifier;
        const isNow = when.toLowerCase() === 'now';
        fill(result, h('div', {class: 'success', 'data-testid': 'schedule-result'},
          h('p', null, isNow ? 'Job submitted: ' : 'Scheduled: ',
            h('code', {'data-testid': 'new-job-id'}, id)),
          h('p', null,
            isNow ? h('a', {href: `#/log/${id}/err`, 'data-testid': 'new-job-log'}, 'Follow its log →') : null,
            isNow ? ' · ' : null,
            h('a', {href: `#/jobs?project=${encodeURIComponent(chosen.project)}&spider=${encodeURIComponent(chosen.spider)}`,
              'data-testid': 'new-job-link'}, 'See it in Jobs →'))));
      } catch (err) {
        fill(result, h('div', {class: 'error', role: 'alert', 'data-testid': 'schedule-error'},
          h('strong', null, 'Not scheduled: '), err.message));
      } finally {
        submit.disabled = !projectNames().length;
      }
    }},
  h('div', {class: 'grid2'},
    h('label', {for: 'project'}, 'Project', projectBox),
    h('label', {for: 'spider'}, 'Spider', spiderBox)),
  h('label', {for: 'when'}, 'When', whenInput),
  h('div', {class: 'examples small'}, 'Examples: ', EXAMPLES.map((ex) => h('button', {type: 'button', class: 'chip',
    onclick: () => { whenInput.value = ex; whenInput.dispatchEvent(new Event('input')); }}, ex))),
  preview,
  h('label', {for: 'description'}, h('span', null, 'Description ', h('span', {class: 'muted small'}, '(optional)')),
    description),
  h('label', {for: 'payload'}, h('span', null, 'Payload ', h('span', {class: 'muted small'},
    '(optional JSON object, given to the spider as the argument ', h('code', null, 'payload'), ')')), payload),
  payloadMsg,
  h('div', {class: 'row'}, submit));

  const tz = h('span');
  const help = h('aside', {class: 'card help'},
    h('h2', null, 'Scheduling specs'),
    h('p', null, h('code', null, 'now'), ' runs once, as soon as a job slot is free. Otherwise:'),
    h('pre', {class: 'grammar'}, 'every [N [to M]] UNIT [at TIME]'),
    h('p', {class: 'small'}, 'UNIT: second(s), minute(s), hour(s), day(s), week(s), or a weekday (monday … sunday). ',
      'Use the plural with N and with ', h('code', null, 'to'), '.'),
    h('p', {class: 'small'}, h('code', null, 'at'), ' takes ', h('code', null, 'HH:MM'), ' for days and weekdays, ',
      h('code', null, ':MM'), ' for hours, ', h('code', null, ':SS'), ' for minutes.'),
    h('p', {class: 'small muted'}, 'Times are in the daemon\u2019s time zone', tz,
      ', with their UTC offset. Days, weeks and weekdays keep their wall-clock time through ',
      'daylight-saving changes; seconds, minutes and hours are elapsed time. A scheduled job queues a ',
      'run at each due time, and never more than one waiting run.'));
  const showTz = () => { tz.textContent = state.status?.timezone ? ` (${state.status.timezone})` : ''; };
  showTz();
  // A result or error is about the last submission: it goes once the form changes.
  form.addEventListener('input', () => fill(result));

  root.append(h('div', {class: 'page-head'}, h('h1', null, 'Schedule a job')),
    h('div', {class: 'schedule-layout'}, h('section', {class: 'card'}, form, result), help));
  renderPickers();
  checkWhen();
  const off = subscribe((kind) => {
    if (kind === 'projects' || kind === 'reset') renderPickers();
    if (kind === 'status') showTz();
  });
  return () => { off(); checkWhenSoon.cancel(); previewController?.abort(); };
}
