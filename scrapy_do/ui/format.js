// Times from the server are its local wall-clock time ("2026-11-23 18:02:18.703623").
// They are compared with the server's own clock (status.time), never the browser's
// time zone, so elapsed times are right wherever the browser is.

import {state} from './state.js';

/** Milliseconds for a server time string, as if it were UTC (only differences matter). */
export function parseServerTime(text) {
  const m = /^(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.(\d+))?/.exec(text || '');
  if (!m) return NaN;
  const ms = m[7] ? Math.floor(Number('0.' + m[7]) * 1000) : 0;
  return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6], ms);
}

/** The server's clock now, in the same scale as parseServerTime. */
export function serverNow() {
  return Date.now() + state.clockOffset;
}

/** Seconds since a server time string (null if unknown). */
export function secondsSince(text) {
  const t = parseServerTime(text);
  return Number.isNaN(t) ? null : Math.max(0, (serverNow() - t) / 1000);
}

/** 42s, 3m 07s, 2h 05m, 1d 3h */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return '—';
  let s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400); s %= 86400;
  const hh = Math.floor(s / 3600); s %= 3600;
  const mm = Math.floor(s / 60); s %= 60;
  const pad = (n) => String(n).padStart(2, '0');
  if (d) return `${d}d ${hh}h`;
  if (hh) return `${hh}h ${pad(mm)}m`;
  if (mm) return `${mm}m ${pad(s)}s`;
  return `${s}s`;
}

/** "18:02:18" for today (server time), "2026-11-20 18:02" otherwise, "—" for null. */
export function shortTime(text) {
  if (!text) return '—';
  const t = parseServerTime(text);
  if (Number.isNaN(t)) return text;
  const today = new Date(serverNow()).toISOString().slice(0, 10);
  const iso = new Date(t).toISOString();
  return iso.slice(0, 10) === today ? iso.slice(11, 19) : `${iso.slice(0, 10)} ${iso.slice(11, 16)}`;
}

/** The full time without microseconds, for tooltips. */
export function fullTime(text) {
  return text ? String(text).replace(/\.\d+$/, '') : '';
}

export function formatBytes(n) {
  if (n === null || n === undefined) return '?';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export function shortId(id) {
  return String(id || '').slice(0, 8);
}
