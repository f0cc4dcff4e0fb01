// Tiny DOM helpers: every piece of server data goes in as text, never as HTML.

/** h('tr', {class: 'x', 'data-testid': 'row', onclick: fn}, child, [children], 'text') */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith('on') && typeof value === 'function') {
        el.addEventListener(key.slice(2).toLowerCase(), value);
      } else if (key === 'class') {
        el.className = Array.isArray(value) ? value.filter(Boolean).join(' ') : value;
      } else if (key === 'value' || key === 'checked' || key === 'disabled' || key === 'selected') {
        el[key] = value;
      } else if (key === 'style' && typeof value === 'object') {
        Object.assign(el.style, value);
      } else {
        el.setAttribute(key, value === true ? '' : String(value));
      }
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false || child === true) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Replace the children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A function that runs `fn` once, `ms` after the last call. */
export function debounce(fn, ms) {
  let timer = null;
  const wrapped = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => { timer = null; fn(...args); }, ms);
  };
  wrapped.cancel = () => clearTimeout(timer);
  return wrapped;
}

/** A transient message at the bottom of the screen. */
export function toast(message, kind = 'info', ms = 6000) {
  const box = document.getElementById('toasts');
  if (!box) return;
  const item = h('div', {class: ['toast', kind], role: kind === 'error' ? 'alert' : 'status', 'data-testid': 'toast'},
    h('span', null, message),
    h('button', {class: 'link', 'aria-label': 'Dismiss', onclick: () => item.remove()}, '×'));
  box.append(item);
  setTimeout(() => item.remove(), ms);
}

/** A <select> with `options` ([value, label] pairs or plain strings). */
export function select(props, options, selected) {
  return h('select', props, options.map((o) => {
    const [value, label] = Array.isArray(o) ? o : [o, o];
    return h('option', {value, selected: value === selected}, label);
  }));
}
