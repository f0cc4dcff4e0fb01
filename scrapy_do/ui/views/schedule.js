// Schedule a job: project and spider pickers, a scheduling spec (every ... or cron)
// checked live against /preview-schedule.json in the chosen time zone, spider
// arguments and settings as key/value rows, priority and time limit, and for
// periodic jobs the time zone, overlap and catch-up. Everything is checked before
// sending; what the daemon still refuses is shown with its own message.
//
// #/schedule?edit=<job-id> opens the same form on a SCHEDULED job, prefilled, and
// saves with /edit-job.json (only the fields that changed are sent).

import {api} from '../api.js';
import {jobHref} from '../components.js';
import {debounce, fill, h, select} from '../dom.js';
import {formatDuration, fullTime, shortId} from '../format.js';
import {KeyValueRows, argumentKeyError, settingNameError} from '../keyvalue.js';
import {projectNames, state, subscribe} from '../state.js';

export const title = 'Schedule';
const EXAMPLES = ['now', 'every 10 minutes', 'every hour at :15', 'every day at 10:30', 'every monday at 08:00',
  '*/15 9-17 * * mon-fri', '0 6 * * *'];
/** Offered by the time zone box (any IANA name the daemon knows can be typed). */
const ZONES = ['UTC', 'Europe/London', 'Europe/Dublin', 'Europe/Lisbon', 'Europe/Paris', 'Europe/Berlin',
  'Europe/Amsterdam', 'Europe/Madrid', 'Europe/Rome', 'Europe/Zurich', 'Europe/Warsaw', 'Europe/Athens',
  'Europe/Helsinki', 'Europe/Istanbul', 'Europe/Moscow', 'Africa/Cairo', 'Africa/Lagos', 'Africa/Johannesburg',
  'Asia/Dubai', 'Asia/Karachi', 'Asia/Kolkata', 'Asia/Kathmandu', 'Asia/Dhaka', 'Asia/Bangkok', 'Asia/Jakarta',
  'Asia/Singapore', 'Asia/Shanghai', 'Asia/Hong_Kong', 'Asia/Taipei', 'Asia/Seoul', 'Asia/Tokyo',
  'Australia/Perth', 'Australia/Adelaide', 'Australia/Sydney', 'Pacific/Auckland', 'Pacific/Honolulu',
  'America/Anchorage', 'America/Los_Angeles', 'America/Denver', 'America/Phoenix', 'America/Chicago',
  'America/Mexico_City', 'America/New_York', 'America/Toronto', 'America/Bogota', 'America/Lima',
  'America/Santiago', 'America/Sao_Paulo', 'America/Argentina/Buenos_Aires'];
export const PRIORITY = [-1000, 1000];
export const TIMEOUT = [1, 604800];

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

/** null if `text` is empty or a whole number in [low, high], else the error to show. */
export function wholeError(name, text, [low, high], unit = '') {
  const t = text.trim();
  if (!t) return null;
  if (!/^[+-]?[0-9]{1,12}$/.test(t) || Number(t) < low || Number(t) > high) {
    return `${name} must be a whole number from ${low} to ${high}${unit}.`;
  }
  return null;
}

export function isNow(when) {
  const w = when.trim().toLowerCase();
  return !w || w === 'now';
}

/** The zone a job record's times are in, for the preview: its own, or the daemon's. */
function daemonZone() {
  return state.status?.timezone || '';
}

/** One labelled input with its message box below it. */
/** A record's on/off option (true, false or null: the daemon's default) as the select's value. */
function switchValue(value) {
  return value === true ? 'on' : value === false ? 'off' : '';
}

function field(id, label, input, extra) {
  return h('div', {class: 'field'}, h('label', {for: id}, label, input), extra || null);
}

export function mount(root, route) {
  const editId = route.query.get('edit') || '';
  const editing = Boolean(editId);
  let base = null;       // editing: the job the form was filled from (changes are relative to it)
  let saving = false;
  const chosen = {project: route.query.get('project') || '', spider: route.query.get('spider') || ''};
  const projectBox = h('span');
  const spiderBox = h('span');
  const whenInput = h('input', {id: 'when', name: 'when', type: 'text', value: route.query.get('when') || 'now',
    autocomplete: 'off', spellcheck: 'false', 'data-testid': 'when', 'aria-describedby': 'when-preview'});
  const preview = h('div', {id: 'when-preview', class: 'preview', 'aria-live': 'polite', 'data-testid': 'when-preview'});

  // Periodic jobs only: the zone the spec is read in, overlap and catch-up.
  const zoneInput = h('input', {id: 'timezone', name: 'timezone', type: 'text', list: 'timezones', autocomplete: 'off',
    spellcheck: 'false', 'data-testid': 'timezone', 'aria-describedby': 'when-preview timezone-help'});
  const zoneList = h('datalist', {id: 'timezones'});
  const zoneHelp = h('span', {id: 'timezone-help', class: 'muted small'});
  const overlap = select({id: 'overlap', name: 'overlap', 'data-testid': 'overlap'},
    [['allow', 'allow: run at each due time'], ['skip', 'skip while a run is active']], 'allow');
  const catchUp = h('input', {id: 'catch-up', name: 'catch-up', type: 'checkbox', 'data-testid': 'catch-up'});
  const periodic = h('fieldset', {class: 'periodic', 'data-testid': 'periodic-options'},
    h('legend', null, 'Periodic job'),
    h('div', {class: 'grid2'},
      field('timezone', h('span', null, 'Time zone ', h('span', {class: 'muted small'}, '(IANA name)')), zoneInput,
        zoneHelp),
      field('overlap', 'Overlapping runs', overlap)),
    h('label', {class: 'inline check', for: 'catch-up'}, catchUp,
      h('span', null, 'Catch up: run once at start-up if a run was missed while the daemon was down')),
    zoneList);

  const description = h('input', {id: 'description', name: 'description', type: 'text', maxlength: 500,
    placeholder: 'e.g. nightly refresh', 'data-testid': 'description'});
  const args = new KeyValueRows({id: 'args', noun: 'Argument', legend: 'Spider arguments',
    hint: '(optional; each is passed as -a NAME=VALUE)', keyPlaceholder: 'category',
    valuePlaceholder: 'books', checkKey: argumentKeyError});
  const settings = new KeyValueRows({id: 'settings', noun: 'Setting', legend: 'Scrapy settings',
    hint: '(optional; each is passed as -s NAME=VALUE, over the project\u2019s)', keyPlaceholder: 'DOWNLOAD_DELAY',
    valuePlaceholder: '2', checkKey: settingNameError});
  const priority = h('input', {id: 'priority', name: 'priority', type: 'text', inputmode: 'numeric',
    autocomplete: 'off', placeholder: '0', 'data-testid': 'priority', 'aria-describedby': 'priority-error'});
  const priorityMsg = h('div', {id: 'priority-error', class: 'field-msg', 'aria-live': 'polite'});
  const timeout = h('input', {id: 'timeout', name: 'timeout', type: 'text', inputmode: 'numeric',
    autocomplete: 'off', placeholder: 'none', 'data-testid': 'timeout', 'aria-describedby': 'timeout-error'});
  const timeoutMsg = h('div', {id: 'timeout-error', class: 'field-msg', 'aria-live': 'polite'});
  // Whether a crawl that exits 0 but logged errors fails: '' leaves it to the daemon's fail-on-errors.
  const failOnErrors = select({id: 'fail-on-errors', name: 'fail-on-errors', 'data-testid': 'fail-on-errors'},
    [['', 'the daemon\u2019s default (fail-on-errors)'], ['on', 'fail the job'],
      ['off', 'succeed, marked \u201cwith errors\u201d']], '');
  const payload = h('textarea', {id: 'payload', name: 'payload', rows: 4, spellcheck: 'false',
    placeholder: '{"pages": 10}', 'data-testid': 'payload', 'aria-describedby': 'payload-error'});
  payload.value = '{}';
  payload.readOnly = editing;
  const payloadMsg = h('div', {id: 'payload-error', 'aria-live': 'polite'});
  const submit = h('button', {type: 'submit', class: 'primary', 'data-testid': 'schedule-submit'},
    editing ? 'Save changes' : 'Schedule');
  const result = h('div', {class: 'form-result', 'aria-live': 'polite', 'data-testid': 'schedule-result-box'});
  const notice = h('div', {class: 'edit-notice', 'aria-live': 'polite'});

  const renderPickers = () => {
    if (editing) {
      fill(projectBox, h('span', {class: 'fixed mono', id: 'project', 'data-testid': 'project'}, base?.project || '…'));
      fill(spiderBox, h('span', {class: 'fixed mono', id: 'spider', 'data-testid': 'spider'}, base?.spider || '…'));
      return;
    }
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

  const renderZones = () => {
    const own = daemonZone();
    let browser = '';
    try { browser = Intl.DateTimeFormat().resolvedOptions().timeZone || ''; } catch { /* no Intl zone */ }
    const names = [...new Set([own, browser, ...ZONES].filter(Boolean))];
    fill(zoneList, names.map((z) => h('option', {value: z},
      z === own ? 'the daemon\u2019s zone' : z === browser ? 'this browser\u2019s zone' : null)));
    zoneInput.placeholder = own ? `the daemon\u2019s (${own})` : 'the daemon\u2019s';
    fill(zoneHelp, 'Leave empty for the daemon\u2019s zone', own ? ` (${own})` : '', editing ? '' : ', and to follow it if it changes.');
  };

  const showPeriodic = () => { periodic.hidden = isNow(whenInput.value); };

  // Live check of the spec in its zone: debounced, and a newer request cancels an older one.
  let previewController = null;
  const checkWhen = async () => {
    previewController?.abort();
    previewController = new AbortController();
    const when = whenInput.value.trim() || 'now';
    const zone = isNow(when) ? '' : zoneInput.value.trim();
    try {
      const body = await api.preview(when, 5, previewController.signal, zone);
      whenInput.removeAttribute('aria-invalid');
      zoneInput.removeAttribute('aria-invalid');
      if (body.when === 'now' && editing) {
        fill(preview, h('p', {class: 'error', 'data-testid': 'when-error'},
          'A scheduled job stays periodic: give it an every … spec or a cron expression.'));
      } else if (body.when === 'now') {
        fill(preview, h('p', {class: 'ok', 'data-testid': 'when-ok'}, 'Runs once, as soon as a job slot is free.'));
      } else {
        const where = zone ? h('span', {'data-testid': 'preview-zone'}, zone)
          : h('span', {'data-testid': 'preview-zone'}, 'the daemon\u2019s time zone', daemonZone() ? `, ${daemonZone()}` : '');
        fill(preview, h('p', {class: 'ok', 'data-testid': 'when-ok'}, 'Valid: ', h('code', null, body.when),
          '. Next runs (', where, '):'),
        h('ol', {class: 'next-runs', 'data-testid': 'next-runs'}, body.next.map((t) => h('li', null, fullTime(t)))));
      }
    } catch (err) {
      if (err.name === 'AbortError') return;
      (/^timezone\b/.test(err.message) ? zoneInput : whenInput).setAttribute('aria-invalid', 'true');
      fill(preview, h('p', {class: 'error', 'data-testid': 'when-error'}, err.message));
    }
  };
  const checkWhenSoon = debounce(checkWhen, 250);
  const whenChanged = () => {
    showPeriodic();
    fill(preview, h('p', {class: 'muted'}, 'Checking…'));
    checkWhenSoon();
  };
  whenInput.addEventListener('input', whenChanged);
  zoneInput.addEventListener('input', whenChanged);

  const checkPayload = () => {
    if (editing) return true;  // it cannot change: shown, not sent
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

  const checkNumber = (input, box, name, range, unit, testid) => {
    const error = wholeError(name, input.value, range, unit);
    if (error) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
    const t = input.value.trim();
    const hint = !error && input === timeout && t ? `${formatDuration(Number(t))} after the crawl starts` : null;
    fill(box, error ? h('p', {class: 'error', 'data-testid': testid}, error)
      : hint ? h('p', {class: 'muted', 'data-testid': `${testid}-hint`}, hint) : null);
    return !error;
  };
  const checkPriority = () => checkNumber(priority, priorityMsg, 'Priority', PRIORITY, '', 'priority-error');
  const checkTimeout = () => {
    if (!checkNumber(timeout, timeoutMsg, 'Timeout', TIMEOUT, ' seconds', 'timeout-error')) return false;
    if (editing && base?.timeout && !timeout.value.trim()) {
      fill(timeoutMsg, h('p', {class: 'muted', 'data-testid': 'timeout-error-hint'},
        'Saving removes its own time limit: the daemon\u2019s job-timeout applies again.'));
    }
    return true;
  };
  priority.addEventListener('input', debounce(checkPriority, 300));
  timeout.addEventListener('input', debounce(checkTimeout, 300));
  const checkRows = debounce(() => { args.read(); settings.read(); }, 400);
  args.el.addEventListener('input', checkRows);
  settings.el.addEventListener('input', checkRows);

  /** Everything checked in the page; null (the first bad field focused) if something is wrong. */
  const collect = () => {
    const a = args.read();
    const s = settings.read();
    const checks = [[checkPayload(), payload], [!a.error, a.input], [!s.error, s.input],
      [checkPriority(), priority], [checkTimeout(), timeout]];
    const bad = checks.find(([ok]) => !ok);
    if (bad) {
      bad[1]?.focus();
      return null;
    }
    const when = whenInput.value.trim() || 'now';
    return {when, args: a.value, settings: s.value, priority: priority.value.trim(), timeout: timeout.value.trim(),
      failOnErrors: failOnErrors.value, timezone: zoneInput.value.trim(), overlap: overlap.value, catchUp: catchUp.checked,
      description: description.value, payload: payload.value.trim() || '{}', periodic: !isNow(when)};
  };

  /** The fields of schedule-job.json: only those with values, and the periodic ones only for periodic jobs. */
  const scheduleFields = (v) => {
    const fields = {project: chosen.project, spider: chosen.spider, when: v.when, description: v.description,
      payload: v.payload};
    if (Object.keys(v.args).length) fields.args = JSON.stringify(v.args);
    if (Object.keys(v.settings).length) fields.settings = JSON.stringify(v.settings);
    if (v.priority) fields.priority = v.priority;
    if (v.timeout) fields.timeout = v.timeout;
    if (v.failOnErrors) fields['fail-on-errors'] = v.failOnErrors;
    if (v.periodic) {
      if (v.timezone) fields.timezone = v.timezone;
      fields.overlap = v.overlap;
      fields['catch-up'] = v.catchUp ? 'on' : 'off';
    }
    return fields;
  };

  /** The fields of edit-job.json: those that differ from the job the form was filled from. */
  const editFields = (v, job) => {
    const fields = {};
    const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
    if (v.when !== job.schedule) fields.when = v.when;
    if (v.timezone !== (job.timezone || '')) fields.timezone = v.timezone;  // empty: the daemon's zone again
    if (v.overlap !== (job.overlap || 'allow')) fields.overlap = v.overlap;
    if (v.catchUp !== Boolean(job['catch-up'])) fields['catch-up'] = v.catchUp ? 'on' : 'off';
    if (!same(v.args, job.args || {})) fields.args = JSON.stringify(v.args);
    if (!same(v.settings, job.settings || {})) fields.settings = JSON.stringify(v.settings);
    if (Number(v.priority || 0) !== (job.priority || 0)) fields.priority = v.priority || '0';
    // An empty timeout removes the job's own limit.
    if ((v.timeout ? Number(v.timeout) : null) !== (job.timeout ?? null)) fields.timeout = v.timeout;
    // An empty choice puts the daemon's default back.
    if (v.failOnErrors !== switchValue(job['fail-on-errors'])) fields['fail-on-errors'] = v.failOnErrors;
    if (v.description !== (job.description || '')) fields.description = v.description;
    return fields;
  };

  const submitNew = async (v) => {
    const body = await api.schedule(scheduleFields(v));
    const id = body.identifier;
    const now = !v.periodic;
    fill(result, h('div', {class: 'success', 'data-testid': 'schedule-result'},
      h('p', null, now ? 'Job submitted: ' : 'Scheduled: ', h('code', {'data-testid': 'new-job-id'}, id)),
      h('p', null,
        now ? h('a', {href: `#/log/${id}/err`, 'data-testid': 'new-job-log'}, 'Follow its log →') : null,
        now ? ' · ' : null,
        now ? h('a', {href: jobHref(id), 'data-testid': 'new-job-page'}, 'Its stats and items →') : null,
        now ? ' · ' : null,
        h('a', {href: `#/jobs?project=${encodeURIComponent(chosen.project)}&spider=${encodeURIComponent(chosen.spider)}`,
          'data-testid': 'new-job-link'}, 'See it in Jobs →'))));
  };

  const submitEdit = async (v) => {
    const fields = editFields(v, base);
    if (!Object.keys(fields).length) {
      fill(result, h('div', {class: 'success', 'data-testid': 'edit-unchanged'},
        h('p', null, 'Nothing changed: there is nothing to save.')));
      return;
    }
    const job = await api.editJob(base.identifier, fields);
    fillFrom(job);
    fill(notice);
    fill(result, h('div', {class: 'success', 'data-testid': 'edit-result'},
      h('p', null, 'Saved: ', h('code', {'data-testid': 'edit-spec'}, job.schedule),
        job.timezone ? ` in ${job.timezone}` : '', '. ',
        job.paused ? 'It is paused: it gets its next run when it is resumed.'
          : job['next-run'] ? `Next run ${fullTime(job['next-run'])}.` : ''),
      h('p', null, h('a', {href: '#/jobs', 'data-testid': 'edit-back'}, 'Back to Jobs →'))));
  };

  const form = h('form', {class: 'schedule-form', 'data-testid': 'schedule-form', novalidate: true,
    onsubmit: async (event) => {
      event.preventDefault();
      fill(result);
      const values = collect();
      if (!values) return;
      submit.disabled = true;
      saving = true;
      try {
        await (editing ? submitEdit(values) : submitNew(values));
      } catch (err) {
        fill(result, h('div', {class: 'error', role: 'alert', 'data-testid': 'schedule-error'},
          h('strong', null, editing ? 'Not saved: ' : 'Not scheduled: '), err.message));
      } finally {
        saving = false;
        submit.disabled = editing ? !editable(base) : !projectNames().length;
      }
    }},
  h('div', {class: 'grid2'},
    h('label', {for: 'project'}, 'Project', projectBox),
    h('label', {for: 'spider'}, 'Spider', spiderBox)),
  h('label', {for: 'when'}, 'When', whenInput),
  h('div', {class: 'examples small'}, 'Examples: ', EXAMPLES.filter((ex) => !editing || ex !== 'now').map((ex) =>
    h('button', {type: 'button', class: 'chip',
      onclick: () => { whenInput.value = ex; whenInput.dispatchEvent(new Event('input', {bubbles: true})); }}, ex))),
  preview,
  periodic,
  h('label', {for: 'description'}, h('span', null, 'Description ', h('span', {class: 'muted small'}, '(optional)')),
    description),
  args.el,
  settings.el,
  h('div', {class: 'grid2'},
    field('priority', h('span', null, 'Priority ', h('span', {class: 'muted small'}, '(−1000 to 1000, higher starts first)')),
      priority, priorityMsg),
    field('timeout', h('span', null, 'Timeout in seconds ', h('span', {class: 'muted small'}, '(optional time limit)')),
      timeout, timeoutMsg)),
  field('fail-on-errors', h('span', null, 'If the crawl logs errors ',
    h('span', {class: 'muted small'}, '(and exits 0)')), failOnErrors),
  h('label', {for: 'payload'}, h('span', null, 'Payload ', h('span', {class: 'muted small'}, editing
    ? '(cannot be changed: cancel the job and schedule a new one)'
    : ['(optional JSON object, given to the spider as the argument ', h('code', null, 'payload'), ')'])), payload),
  payloadMsg,
  h('div', {class: 'row'}, submit, editing ? h('a', {class: 'button', href: '#/jobs', 'data-testid': 'edit-cancel'},
    'Back to Jobs') : null));

  const tz = h('span');
  const help = h('aside', {class: 'card help'},
    h('h2', null, 'Scheduling specs'),
    h('p', null, h('code', null, 'now'), ' runs once, as soon as a job slot is free. Otherwise:'),
    h('pre', {class: 'grammar'}, 'every [N [to M]] UNIT [at TIME]'),
    h('p', {class: 'small'}, 'UNIT: second(s), minute(s), hour(s), day(s), week(s), or a weekday (monday … sunday). ',
      'Use the plural with N and with ', h('code', null, 'to'), '.'),
    h('p', {class: 'small'}, h('code', null, 'at'), ' takes ', h('code', null, 'HH:MM'), ' for days and weekdays, ',
      h('code', null, ':MM'), ' for hours, ', h('code', null, ':SS'), ' for minutes.'),
    h('p', {class: 'small'}, 'Or a cron expression of five fields:'),
    h('pre', {class: 'grammar'}, 'minute hour day-of-month month day-of-week\n*/15 9-17 * * mon-fri'),
    h('p', {class: 'small muted'}, 'Times are in the daemon\u2019s time zone', tz, ' unless the job has a ',
      h('em', null, 'Time zone'), ' of its own, with their UTC offset. Days, weeks, weekdays and cron keep their ',
      'wall-clock time through daylight-saving changes; seconds, minutes and hours are elapsed time. A scheduled ',
      'job queues a run at each due time, and never more than one waiting run; with ', h('em', null, 'skip'),
      ' it queues none while its last run is still pending or running.'));
  const showTz = () => {
    tz.textContent = state.status?.timezone ? ` (${state.status.timezone})` : '';
    renderZones();
  };
  showTz();
  // A result or error is about the last submission: it goes once the form changes.
  form.addEventListener('input', () => fill(result));

  // -- editing an existing job -------------------------------------------------
  const editable = (job) => Boolean(job) && job.status === 'SCHEDULED';
  const EDITED = ['schedule', 'timezone', 'overlap', 'catch-up', 'args', 'settings', 'priority', 'timeout', 'fail-on-errors',
    'description'];
  const differs = (a, b) => EDITED.some((k) => JSON.stringify(a[k] ?? null) !== JSON.stringify(b[k] ?? null));
  const fillFrom = (job) => {
    base = job;
    whenInput.value = job.schedule || '';
    zoneInput.value = job.timezone || '';
    overlap.value = job.overlap || 'allow';
    catchUp.checked = Boolean(job['catch-up']);
    description.value = job.description || '';
    args.set(job.args);
    settings.set(job.settings);
    priority.value = job.priority ? String(job.priority) : '';
    timeout.value = job.timeout ? String(job.timeout) : '';
    failOnErrors.value = switchValue(job['fail-on-errors']);
    payload.value = job.payload || '{}';
    for (const input of [priority, timeout]) input.removeAttribute('aria-invalid');
    fill(priorityMsg);
    fill(timeoutMsg);
    showPeriodic();
    renderPickers();
    renderEditHead();
    checkWhen();
  };
  const editHead = h('p', {class: 'muted edit-head', 'data-testid': 'edit-job-head'});
  const renderEditHead = () => {
    if (!base) return;
    fill(editHead, h('code', {title: base.identifier, 'data-testid': 'edit-job-id'}, shortId(base.identifier)), ' · ',
      base.spider, ' in ', base.project, ' · ', base.paused
        ? h('span', {class: 'badge s-paused', 'data-testid': 'job-paused'}, 'PAUSED')
        : h('span', null, 'next run ', base['next-run'] ? fullTime(base['next-run']) : '—'));
  };
  const refuse = (message) => {
    submit.disabled = true;
    fill(notice, h('p', {class: 'error', role: 'alert', 'data-testid': 'edit-notice'}, message));
  };
  const showJobChange = (job) => {
    if (!editable(job)) {
      refuse(`This job is ${job.status} now: only SCHEDULED jobs can be edited.`);
      return;
    }
    base = {...base, paused: job.paused, 'next-run': job['next-run'], skipped: job.skipped};
    renderEditHead();
    if (!saving && differs(job, base)) {
      fill(notice, h('p', {class: 'warn', 'data-testid': 'edit-notice'},
        'This job was changed elsewhere since the form was filled. ',
        h('button', {type: 'button', class: 'link', 'data-testid': 'edit-reload', onclick: () => {
          fill(notice);
          fillFrom(job);
        }}, 'Load its current values')));
    }
  };
  const loadJob = async () => {
    submit.disabled = true;
    try {
      const job = state.active.get(editId) || await api.job(editId);
      if (!editable(job)) {
        base = job;
        renderPickers();
        refuse(`This job is ${job.status}: only SCHEDULED jobs can be edited.` +
          (job.status === 'PENDING' || job.status === 'RUNNING' ? '' : ' Schedule a new one instead.'));
        return;
      }
      fillFrom(job);
      submit.disabled = false;
    } catch (err) {
      refuse(err.message);
    }
  };

  root.append(h('div', {class: 'page-head'}, h('h1', null, editing ? 'Edit a scheduled job' : 'Schedule a job')),
    h('div', {class: 'schedule-layout'},
      h('section', {class: 'card'}, editing ? editHead : null, notice, form, result), help));
  renderPickers();
  showPeriodic();
  if (editing) loadJob();
  else checkWhen();
  const off = subscribe((kind, data) => {
    if (kind === 'projects' || kind === 'reset') renderPickers();
    if (kind === 'status') showTz();
    if (editing && base && kind === 'job' && data.identifier === editId) showJobChange(data);
    if (editing && base && kind === 'reset') {
      // Reconnected: events may have been missed.
      const job = state.active.get(editId);
      if (job) showJobChange(job);
      else api.job(editId).then(showJobChange, (err) => refuse(err.message));
    }
  });
  return () => { off(); checkWhenSoon.cancel(); checkRows.cancel(); previewController?.abort(); };
}
