// Times from the server are instants in the daemon's zone with their UTC offset
// ("2026-11-23 18:02:18.703623+01:00"). They are parsed as exact instants and shown
// as the daemon's wall clock (as curl and the logs show them); elapsed times are
// measured against the server's own clock (status.time), whatever the browser's zone.

import {state} from './state.js';

const TIME = /^(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$/;

/** Minutes east of UTC of a server time string's offset (0 without one, NaN if not a time). */
export function serverOffset(text) {
  const m = TIME.exec(text || '');
  if (!m) return NaN;
  if (!m[8] || m[8] === 'Z') return 0;
  const sign = m[8][0] === '-' ? -1 : 1;
  const digits = m[8].slice(1).replace(':', '');
  return sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4)));
}

/** Epoch milliseconds of a server time string (a time without offset is taken as UTC). */
export function parseServerTime(text) {
  const m = TIME.exec(text || '');
  if (!m) return NaN;
  const ms = m[7] ? Math.floor(Number('0.' + m[7]) * 1000) : 0;
  return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6], ms) - serverOffset(text) * 60000;
}

/** The server's clock now, in epoch milliseconds. */
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

/** The daemon's date now, "YYYY-MM-DD" in its zone: its clock and its UTC offset, both from status.time. */
export function serverToday() {
  return new Date(serverNow() + state.serverOffset * 60000).toISOString().slice(0, 10);
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * A time as the daemon's wall clock: "18:02:18" on the daemon's today, "Nov 30 14:02" on
 * another day of this year, "Nov 30 2025 14:02" in another year; "—" for null.
 */
export function shortTime(text) {
  if (!text) return '—';
  const m = TIME.exec(text);
  if (!m) return text;
  const today = serverToday();
  if (`${m[1]}-${m[2]}-${m[3]}` === today) return `${m[4]}:${m[5]}:${m[6]}`;
  const day = `${MONTHS[Number(m[2]) - 1]} ${Number(m[3])}`;
  return m[1] === today.slice(0, 4) ? `${day} ${m[4]}:${m[5]}` : `${day} ${m[1]} ${m[4]}:${m[5]}`;
}

/** The full time without microseconds (the offset kept), for tooltips. */
export function fullTime(text) {
  return text ? String(text).replace(/\.\d+(?=[+-]\d\d:?\d\d$|Z$|$)/, '') : '';
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

/** A count with thousands separators ("12,345"); "—" when unknown. */
export function formatCount(n) {
  if (n === null || n === undefined || Number.isNaN(Number(n))) return '—';
  return Math.round(Number(n)).toLocaleString('en-US');
}

/** A rate per minute: one decimal under 10, whole numbers above ("0.5", "42", "1,234"). */
export function formatRate(n) {
  if (n === null || n === undefined || Number.isNaN(Number(n))) return '—';
  const v = Number(n);
  return v < 10 ? v.toFixed(1).replace(/\.0$/, '') : formatCount(v);
}

/** A short build time: "0.42 s", "3.1 s", "42 s", then as formatDuration ("2m 05s"); "—" when unknown. */
export function formatSeconds(n) {
  if (n === null || n === undefined || Number.isNaN(Number(n))) return '—';
  const v = Math.max(0, Number(n));
  if (v < 1) return `${v.toFixed(2)} s`;
  if (v < 10) return `${v.toFixed(1)} s`;
  if (v < 60) return `${Math.round(v)} s`;
  return formatDuration(v);
}

/** "1 requirement", "3 requirements" */
export function plural(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
