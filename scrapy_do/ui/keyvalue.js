// Key/value rows for a job's spider arguments (-a KEY=VALUE) and Scrapy settings
// (-s NAME=VALUE). Rows with neither a key nor a value are ignored. Keys are checked
// by the rules the daemon applies (see scrapy_do/domain/options.py); values are sent
// as the text typed, which is what `scrapy crawl` gets either way.

import {fill, h} from './dom.js';

// Python's str.isidentifier(): a letter or _ (XID_Start), then letters, digits and _.
const IDENTIFIER = /^[\p{ID_Start}_][\p{ID_Continue}]*$/u;
const SETTING = /^[A-Z][A-Z0-9_]*$/;
const OWNED_SETTINGS = {
  LOG_FILE: 'the daemon writes the crawl\u2019s log itself (the job\u2019s .err log)',
};

/** A key quoted as the daemon's messages quote it. */
function quoted(text) {
  return text.includes("'") && !text.includes('"') ? `"${text}"` : `'${text.replace(/'/g, "\\'")}'`;
}

/** null if `key` may be a spider argument, else why not. */
export function argumentKeyError(key) {
  if (key === 'payload') return '\u2018payload\u2019 is the job\u2019s own argument: put it in the Payload box.';
  if (!IDENTIFIER.test(key)) {
    return `${quoted(key)} is not a spider argument name; use Python identifiers such as category or max_pages.`;
  }
  return null;
}

/** null if `name` may be a Scrapy setting override, else why not. */
export function settingNameError(name) {
  if (!SETTING.test(name)) {
    return `${quoted(name)} is not a Scrapy setting name; names are upper case, such as DOWNLOAD_DELAY.`;
  }
  if (OWNED_SETTINGS[name]) return `${name} cannot be overridden: ${OWNED_SETTINGS[name]}.`;
  return null;
}

/** How a value of a job record shows in a row: strings as they are, anything else as JSON. */
function shown(value) {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/**
 * A fieldset of rows. `noun` names one row in labels ("Argument 1 name"); `id` prefixes
 * the test ids (`${id}-add`, `${id}-error`, `${id}-row`).
 */
export class KeyValueRows {
  constructor({id, noun, legend, hint, keyPlaceholder, valuePlaceholder, checkKey}) {
    this.id = id;
    this.noun = noun;
    this.checkKey = checkKey;
    this.keyPlaceholder = keyPlaceholder;
    this.valuePlaceholder = valuePlaceholder;
    this.rows = [];
    this.list = h('div', {class: 'kv-rows'});
    this.message = h('div', {id: `${id}-error`, class: 'kv-error', 'aria-live': 'polite'});
    this.el = h('fieldset', {class: 'kv', 'data-testid': id, 'aria-describedby': `${id}-error`},
      h('legend', null, legend, hint ? h('span', {class: 'muted small'}, ' ', hint) : null),
      this.list,
      h('button', {type: 'button', class: 'small', 'data-testid': `${id}-add`,
        onclick: () => { this.add(); this.rows.at(-1).key.focus(); }}, `+ Add ${noun.toLowerCase()}`),
      this.message);
    this.add();
  }

  /** Replace the rows with the entries of `object` (a job record's args or settings). */
  set(object) {
    this.rows = [];
    for (const [key, value] of Object.entries(object || {})) this.add(key, value, true);
    if (!this.rows.length) this.add();
    this.render();
    this.clearErrors();
  }

  add(key = '', value = '', fromRecord = false) {
    const row = {
      key: h('input', {type: 'text', class: 'kv-key mono', value: key, autocomplete: 'off', spellcheck: 'false',
        placeholder: this.keyPlaceholder, 'data-testid': `${this.id}-key`}),
      value: h('input', {type: 'text', class: 'kv-value mono', value: shown(value), autocomplete: 'off',
        spellcheck: 'false', placeholder: this.valuePlaceholder, 'data-testid': `${this.id}-value`}),
    };
    // A number or an object from a record is sent back as it was unless its text is changed.
    if (fromRecord && typeof value !== 'string') {
      row.original = value;
      row.originalText = shown(value);
    }
    this.rows.push(row);
    this.render();
  }

  remove(row) {
    this.rows = this.rows.filter((r) => r !== row);
    if (!this.rows.length) this.add();
    this.render();
    this.el.dispatchEvent(new Event('input', {bubbles: true}));
  }

  render() {
    this.rows.forEach((row, i) => {
      const n = i + 1;
      row.key.setAttribute('aria-label', `${this.noun} ${n} name`);
      row.value.setAttribute('aria-label', `${this.noun} ${n} value`);
      row.el = row.el || h('div', {class: 'kv-row', 'data-testid': `${this.id}-row`}, row.key,
        h('span', {class: 'muted', 'aria-hidden': 'true'}, '='), row.value,
        h('button', {type: 'button', class: 'small link kv-remove', onclick: () => this.remove(row)}, '\u00d7'));
      row.el.querySelector('.kv-remove').setAttribute('aria-label', `Remove ${this.noun.toLowerCase()} ${n}`);
    });
    fill(this.list, this.rows.map((r) => r.el));
  }

  clearErrors() {
    for (const row of this.rows) row.key.removeAttribute('aria-invalid');
    fill(this.message);
  }

  /**
   * The rows as an object, checked: {value, error, input}. `error` is the first problem
   * (shown under the rows), `input` the field to focus.
   */
  read() {
    this.clearErrors();
    const value = {};
    let error = null;
    let input = null;
    this.rows.forEach((row, i) => {
      if (error) return;
      const key = row.key.value.trim();
      const text = row.value.value;
      if (!key && !text) return;
      const n = i + 1;
      if (!key) error = `${this.noun} ${n} has a value but no name.`;
      else if (Object.hasOwn(value, key)) error = `${quoted(key)} is given twice (${this.noun.toLowerCase()} ${n}).`;
      else error = this.checkKey(key);
      if (error) {
        input = row.key;
        return;
      }
      value[key] = 'original' in row && text === row.originalText ? row.original : text;
    });
    if (error) {
      input.setAttribute('aria-invalid', 'true');
      fill(this.message, h('p', {class: 'error', 'data-testid': `${this.id}-error`}, error));
    }
    return {value, error, input};
  }
}
