// A job's log (.out or .err). Only the tail is loaded first; "Load earlier"
// fetches previous chunks with closed ranges. A running job's log is followed
// with one streaming fetch (the daemon keeps the response open until the job
// ends). The text kept in the page is capped, so a 50 MB log stays responsive.

import {api, logFollow, logSize, logSlice, logUrl} from '../api.js';
import {cancelButton, jobDetails, jobHref, outcomeBadge, runAgainButton, withErrorsNote} from '../components.js';
import {fill, h} from '../dom.js';
import {formatBytes} from '../format.js';
import {state, subscribe} from '../state.js';

export const title = 'Log';

export const TAIL = 64 * 1024;       // first load: the last 64 KiB
export const CHUNK = 64 * 1024;      // each "load earlier"
export const CAP = 1024 * 1024;      // at most this much text in the page
const BLOCK = 64 * 1024;             // text node size
const MAX_RECONNECTS = 20;

/** Offset of the first full line in `bytes` (0 if there is no newline to cut at). */
function firstLine(bytes) {
  const i = bytes.indexOf(10);
  return i >= 0 && i < bytes.length - 1 ? i + 1 : 0;
}

export class LogText {
  constructor(pre, scroller, onChange) {
    this.pre = pre;
    this.scroller = scroller;
    this.onChange = onChange;
    this.blocks = [];     // {node, bytes}
    this.start = 0;       // file offset of the first byte shown
    this.end = 0;         // file offset after the last byte shown
    this.size = 0;        // bytes shown
    this.trimmedTail = false;
    this.queue = [];
    this.queued = 0;
    this.timer = null;
  }

  reset(offset) {
    clearTimeout(this.timer);
    this.timer = null;
    this.queue = [];
    this.queued = 0;
    this.pre.replaceChildren();
    this.blocks = [];
    this.start = this.end = offset;
    this.size = 0;
    this.trimmedTail = false;
  }

  nearBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 48;
  }

  toBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  /** Text arriving from a stream: batched, at most ~20 DOM updates a second. */
  push(text, bytes) {
    this.queue.push(text);
    this.queued += bytes;
    if (!this.timer) this.timer = setTimeout(() => this.flush(), 50);
  }

  flush() {
    clearTimeout(this.timer);
    this.timer = null;
    if (!this.queue.length) return;
    const text = this.queue.join('');
    const bytes = this.queued;
    this.queue = [];
    this.queued = 0;
    this.append(text, bytes);
  }

  append(text, bytes) {
    const stick = this.nearBottom();
    const last = this.blocks[this.blocks.length - 1];
    if (last && last.bytes < BLOCK) {
      last.node.appendData(text);
      last.bytes += bytes;
    } else {
      const node = document.createTextNode(text);
      this.pre.append(node);
      this.blocks.push({node, bytes});
    }
    this.end += bytes;
    this.size += bytes;
    while (this.size > CAP && this.blocks.length > 1) {
      const first = this.blocks.shift();
      first.node.remove();
      this.start += first.bytes;
      this.size -= first.bytes;
    }
    if (stick) this.toBottom();
    this.onChange();
  }

  /** Earlier text, put before what is shown; drops the end if over the cap (returns true then). */
  prepend(text, bytes, from) {
    const before = this.scroller.scrollHeight;
    const node = document.createTextNode(text);
    this.pre.prepend(node);
    this.blocks.unshift({node, bytes});
    this.start = from;
    this.size += bytes;
    let dropped = false;
    while (this.size > CAP && this.blocks.length > 1) {
      const last = this.blocks.pop();
      last.node.remove();
      this.end -= last.bytes;
      this.size -= last.bytes;
      dropped = true;
    }
    if (dropped) {
      // The end is gone: text still queued from the stream no longer joins on.
      clearTimeout(this.timer);
      this.timer = null;
      this.queue = [];
      this.queued = 0;
      this.trimmedTail = true;
    }
    this.scroller.scrollTop += this.scroller.scrollHeight - before;
    this.onChange();
    return dropped;
  }

  dispose() {
    clearTimeout(this.timer);
  }
}

export function mount(root, route) {
  const id = route.args[0] || '';
  const kind = route.args[1] === 'out' ? 'out' : 'err';
  const base = `#/log/${encodeURIComponent(id)}`;
  let job = state.active.get(id) || null;
  let disposed = false;
  let running = null;            // the promise of the current load/follow
  let streamController = null;   // aborts the follow fetch
  let live = false;
  let message = '';

  const headBox = h('div', {class: 'log-head', 'data-testid': 'log-job'});
  const pre = h('pre', {class: 'log-text wrap', 'data-testid': 'log-text'});
  const scroller = h('div', {class: 'log-scroll', 'data-testid': 'log-scroll', tabindex: 0}, pre);
  const info = h('span', {class: 'muted small', 'data-testid': 'log-info'});
  const liveBadge = h('span', {class: 'live-badge', 'data-testid': 'log-live', hidden: true}, 'live');
  const notice = h('div', {class: 'log-notice', 'aria-live': 'polite', 'data-testid': 'log-notice'});
  const earlier = h('button', {type: 'button', class: 'small', 'data-testid': 'log-earlier', disabled: true},
    '↑ Load earlier');
  const latest = h('button', {type: 'button', class: 'small', 'data-testid': 'log-latest', hidden: true},
    'Jump to latest');
  const wrap = h('input', {type: 'checkbox', 'data-testid': 'log-wrap', checked: true,
    onchange: (e) => pre.classList.toggle('wrap', e.target.checked)});

  const text = new LogText(pre, scroller, () => renderInfo());

  function renderInfo() {
    const parts = [];
    if (text.end > 0 || text.start > 0) {
      parts.push(`bytes ${text.start.toLocaleString()}–${text.end.toLocaleString()}`);
      parts.push(`${formatBytes(text.size)} shown`);
    } else if (!message) {
      parts.push('empty');
    }
    if (text.start > 0) parts.push('earlier output not loaded');
    if (text.trimmedTail) parts.push('later output not shown');
    info.textContent = parts.join(' · ');
    earlier.disabled = text.start <= 0;
    latest.hidden = !text.trimmedTail;
    liveBadge.hidden = !live;
  }

  function setNotice(msg, cls = 'muted') {
    message = msg;
    fill(notice, msg ? h('p', {class: cls}, msg) : null);
    renderInfo();
  }

  function renderHead() {
    if (!job) {
      fill(headBox, h('h1', null, 'Log'), h('p', {class: 'muted mono'}, id));
      return;
    }
    fill(headBox,
      h('div', {class: 'log-title'},
        h('a', {href: '#/jobs', class: 'muted small'}, '← Jobs'),
        h('h1', null, job.spider, ' ', h('span', {class: 'muted'}, `· ${kind === 'err' ? 'stderr' : 'stdout'}`)),
        outcomeBadge(job),
        withErrorsNote(job),
        ['SCHEDULED', 'PENDING', 'RUNNING'].includes(job.status) ? cancelButton(job) : runAgainButton(job),
        h('a', {href: jobHref(job.identifier), class: 'small', 'data-testid': 'job-page-link'},
          'stats and items →')),
      jobDetails(job));
  }

  async function loadTail() {
    const size = await logSize(id, kind);
    if (disposed) return;
    text.reset(0);
    if (size > 0) {
      const from = Math.max(0, size - TAIL);
      const slice = await logSlice(id, kind, from, size - 1);
      if (disposed) return;
      const cut = slice.start > 0 ? firstLine(slice.bytes) : 0;
      text.reset(slice.start + cut);
      text.append(new TextDecoder().decode(slice.bytes.subarray(cut)), slice.bytes.length - cut);
    }
    text.toBottom();
    renderInfo();
  }

  async function follow() {
    live = true;
    renderInfo();
    let attempts = 0;
    try {
      while (!disposed && attempts++ < MAX_RECONNECTS) {
        streamController = new AbortController();
        const response = await logFollow(id, kind, text.end, streamController.signal);
        if (!response) break;          // 416: nothing past what we have
        const following = response.headers.get('x-scrapy-do-following') === 'yes';
        // A 200 is the whole file: skip what is already shown.
        let skip = response.status === 200 ? text.end : 0;
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        for (;;) {
          const {done, value} = await reader.read();
          if (done) break;
          let chunk = value;
          if (skip) {
            const n = Math.min(skip, chunk.length);
            chunk = chunk.subarray(n);
            skip -= n;
            if (!chunk.length) continue;
          }
          text.push(decoder.decode(chunk, {stream: true}), chunk.length);
        }
        const rest = decoder.decode();
        if (rest) text.push(rest, 0);
        text.flush();
        if (!following) break;
        // The stream ends when the job ends; if it is still running the connection dropped.
        job = await api.job(id);
        renderHead();
        if (job.status !== 'RUNNING') break;
        await new Promise((r) => setTimeout(r, 500));
      }
    } finally {
      live = false;
      streamController = null;
      renderInfo();
    }
    if (disposed) return;
    // Anything written after the stream closed (a closed range never follows).
    const size = await logSize(id, kind);
    if (!disposed && size > text.end && !text.trimmedTail) {
      const slice = await logSlice(id, kind, text.end, size - 1);
      if (!disposed && slice.bytes.length) text.append(new TextDecoder().decode(slice.bytes), slice.bytes.length);
    }
  }

  async function load() {
    try {
      setNotice('');
      if (!job) {
        job = await api.job(id);
        if (disposed) return;
      }
      renderHead();
      if (job.status === 'SCHEDULED') {
        setNotice(`A scheduled job has no log of its own: each run is a new job. Find its runs in Jobs.`);
        return;
      }
      if (job.status === 'PENDING') {
        setNotice('No log yet: the job is waiting for a free slot. This page shows the log as soon as it starts.');
        return;
      }
      await loadTail();
      if (disposed) return;
      const current = state.active.get(id) || job;
      if (current.status === 'RUNNING') await follow();
      if (!disposed && text.size === 0 && !live) setNotice(`The ${kind === 'err' ? 'standard error' : 'standard output'} of this job is empty.`);
    } catch (err) {
      if (err.name === 'AbortError' || disposed) return;
      setNotice(err.message, 'error');
    }
  }

  function start() {
    if (!running) running = load().finally(() => { running = null; });
    return running;
  }

  earlier.addEventListener('click', async () => {
    if (text.start <= 0) return;
    earlier.disabled = true;
    try {
      const from = Math.max(0, text.start - CHUNK);
      const slice = await logSlice(id, kind, from, text.start - 1);
      if (disposed) return;
      const cut = slice.start > 0 ? firstLine(slice.bytes) : 0;
      const dropped = text.prepend(new TextDecoder().decode(slice.bytes.subarray(cut)), slice.bytes.length - cut,
        slice.start + cut);
      if (dropped) streamController?.abort();   // the end is gone: stop following until "Jump to latest"
    } catch (err) {
      if (!disposed) setNotice(err.message, 'error');
    } finally {
      renderInfo();
    }
  });
  latest.addEventListener('click', async () => {
    streamController?.abort();
    if (running) await running.catch(() => {});
    text.reset(0);
    start();
  });

  root.append(
    headBox,
    h('section', {class: 'card log-card'},
      h('div', {class: 'log-toolbar'},
        h('nav', {class: 'tabs', 'aria-label': 'Log file'},
          h('a', {href: `${base}/err`, class: kind === 'err' ? 'active' : null, 'data-testid': 'tab-err'},
            'stderr ', h('span', {class: 'muted small'}, '(.err, Scrapy log)')),
          h('a', {href: `${base}/out`, class: kind === 'out' ? 'active' : null, 'data-testid': 'tab-out'},
            'stdout ', h('span', {class: 'muted small'}, '(.out)'))),
        h('div', {class: 'log-tools'},
          liveBadge, info, earlier, latest,
          h('label', {class: 'small inline'}, wrap, ' wrap'),
          h('a', {href: logUrl(id, kind), target: '_blank', rel: 'noopener', class: 'small',
            title: 'The raw file (follows a running job until it ends)'}, 'raw'))),
      notice,
      scroller));
  renderHead();
  start();

  const off = subscribe((k, data) => {
    if (k !== 'job' || data.identifier !== id) return;
    const wasWaiting = job && (job.status === 'PENDING');
    job = data;
    renderHead();
    if (wasWaiting && data.status !== 'PENDING' && data.status !== 'SCHEDULED' && !running) start();
  });
  return () => {
    disposed = true;
    off();
    streamController?.abort();
    text.dispose();
  };
}
