// What every part of the page shares: DOM helpers and store time.
//
// Data only ever reaches the page through textContent and setAttribute (never as HTML), and styles
// only through CSS classes and the CSSOM (the CSP allows no inline style).
//
// Time: the page never reads the browser's wall clock. "Now" is the latest store time the monitor sent
// (`at` of the status and of each delta) carried forward by animation-frame timestamps (monotonic), so a
// browser whose clock is off still shows the right "ago". While the tab is hidden frames stop, and so do
// the "ago" cells until it is visible again.

export const time = { at: 0, frame: 0 };

export function $(id) { return document.getElementById(id); }

/** An element with attributes (null / undefined skipped) and children (strings become text). */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  if (attrs) for (const name in attrs) if (attrs[name] !== undefined && attrs[name] !== null && attrs[name] !== false) node.setAttribute(name, String(attrs[name]));
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.appendChild(typeof child === 'object' ? child : document.createTextNode(String(child)));
  }
  return node;
}
export function pill(text, cls, title) { return el('span', { class: 'pill ' + cls, title }, text); }
export function link(href, text, attrs) { return el('a', { ...attrs, href }, text); }

export function frameNow() { const t = document.timeline.currentTime; return typeof t === 'number' ? t : time.frame; }
export function storeNow() { return time.at ? time.at + Math.max(0, frameNow() - time.frame) : 0; }
/** A new store time from the monitor. */
export function setStoreTime(at) { time.at = at; time.frame = frameNow(); }

export function fmtDur(ms) {
  const neg = ms < 0; ms = Math.abs(ms);
  const s = Math.floor(ms / 1000);
  let text;
  if (ms < 1000) text = Math.round(ms) + ' ms';
  else if (ms < 10000) text = (ms / 1000).toFixed(1) + ' s';
  else if (s < 60) text = s + ' s';
  else if (s < 3600) text = Math.floor(s / 60) + 'm ' + String(s % 60).padStart(2, '0') + 's';
  else if (s < 86400) text = Math.floor(s / 3600) + 'h ' + String(Math.floor(s / 60) % 60).padStart(2, '0') + 'm';
  else text = Math.floor(s / 86400) + 'd ' + (Math.floor(s / 3600) % 24) + 'h';
  return neg ? '-' + text : text;
}
export function relative(t) { const d = storeNow() - t; return d >= 0 ? fmtDur(d) + ' ago' : 'in ' + fmtDur(-d); }
export function iso(t) { return typeof t === 'number' ? new Date(t).toISOString() : ''; }
export function clock(t) { return new Date(t).toISOString().slice(11, 19); }
/** An error's first line, shortened (the whole text goes into a title or the run view). */
export function firstLine(text) { const line = String(text).split('\n')[0]; return line.length > 120 ? line.slice(0, 120) + '…' : line; }
export function hostPid(o) { return o.host + ':' + o.pid; }
/** The task of a unit: `task#i` (a shard) and `task@node` (a broadcast share) belong to `task`. */
export function taskOfUnit(unit) { return String(unit).split(/[#@]/)[0]; }
export function taskHref(task, extra) { return '#task=' + encodeURIComponent(task) + (extra || ''); }

// Cells whose text depends on "now", refreshed every second by refreshClocks():
//   data-ago=T "… ago" / "in …"; data-since=T a duration since T; data-until=T a duration left until T.
export function agoCell(t, attrs) { return el('span', { ...attrs, 'data-ago': t, title: (attrs && attrs.title) || iso(t) }, relative(t)); }
export function refreshClocks(root) {
  const now = storeNow();
  (root || document).querySelectorAll('[data-ago]').forEach((n) => { n.textContent = relative(Number(n.getAttribute('data-ago'))); });
  (root || document).querySelectorAll('[data-since]').forEach((n) => { n.textContent = fmtDur(Math.max(0, now - Number(n.getAttribute('data-since')))); });
  (root || document).querySelectorAll('[data-until]').forEach((n) => { n.textContent = fmtDur(Math.max(0, Number(n.getAttribute('data-until')) - now)); });
}

/** GET a JSON path of this monitor (the cookie signs it): `{ status, body }`. */
export function getJson(path) {
  return fetch(path, { credentials: 'same-origin', cache: 'no-store', headers: { accept: 'application/json' } })
    .then((res) => res.json().catch(() => ({})).then((body) => ({ status: res.status, body })));
}

/** The cell of a run's outcome: status, when, duration, lateness, error and a command's exit. */
export function runSummary(run) {
  const parts = [pill(run.status, 's-' + run.status, run.error || undefined)];
  parts.push(agoCell(run.startedAt !== undefined ? run.startedAt : run.tick));
  if (run.status === 'missed' && run.missed) parts.push(el('span', { class: 'muted' }, ' · ' + run.missed.count + ' ticks, ' + run.missed.reason));
  if (typeof run.durationMs === 'number') parts.push(el('span', { class: 'muted' }, ' · ' + fmtDur(run.durationMs)));
  if (typeof run.lateMs === 'number' && run.lateMs > 0) parts.push(el('span', { class: 'muted' }, ' · late ' + fmtDur(run.lateMs)));
  if (run.error) parts.push(el('div', { class: 'muted wrap', title: run.error }, firstLine(run.error)));
  if (run.output) parts.push(el('div', { class: 'muted wrap' }, outputLine(run.output)));
  return parts;
}
/** A command's exit and the first line of what it printed (stderr first). */
export function outputLine(output) {
  return 'exit ' + (output.signal || output.exitCode) + (output.stderr ? ' · ' + firstLine(output.stderr) : output.stdout ? ' · ' + firstLine(output.stdout) : '');
}
