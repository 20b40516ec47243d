/**
 * The monitor's dashboard: one self-contained HTML page (inline CSS and JS, no framework, nothing
 * fetched from another origin, works offline) served at `GET /`. It reads `GET /api/status`, the events
 * the monitor still holds (`GET /api/events/recent`, so a reload keeps them) and `GET /api/runs`, then
 * follows `GET /api/events` (Server-Sent Events) and updates without a reload. Each task row has trigger
 * and pause / resume buttons: they send the token the operator typed into the page (kept in the page's
 * memory only) in the Authorization header, as write actions require (never the cookie).
 *
 * Guarantees: every string from the data (task names, labels, errors) reaches the page through
 * `textContent` or an attribute, never as HTML; the page's requests are same-origin and carry the
 * monitor's cookie; a 401 shows how to sign in and no data. Tables follow the `status` event alone
 * (the source of truth); the typed events feed the events list and the run timeline.
 *
 * Time: the page never reads the browser's wall clock. "Now" is the latest snapshot's store time
 * (`status.at`) carried forward by animation-frame timestamps (monotonic) until the next snapshot, so
 * a browser whose clock is off still shows the right "ago". Non-guarantee: while the tab is hidden
 * frames stop, so the "ago" cells and a stream retry wait until it is visible again.
 *
 * Test hooks: `data-testid` = nodes, tasks, alerts, events, relays, connection, auth, action-token,
 * action-result; buttons `button[data-action][data-act-task]`; rows `tr[data-relay]`
 * (`relay/node`); `tr[data-node]`,
 * `tr[data-task]`; cells `[data-field=owner]` (`host:pid` or `—`) and `[data-field=owner-node]`.
 */
export function dashboardHtml(): string {
  return PAGE;
}

// The page's script is written without backticks, `${` or backslashes: it lives in this template literal.
const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'">
<title>baton</title>
<style>
  :root { --bg: #f6f7f9; --panel: #fff; --text: #1d2330; --muted: #6b7385; --line: #e2e5eb;
    --ok: #2e9d57; --fail: #d64545; --timeout: #e08a1e; --abort: #8a63c8; --missed: #b9a21c; --run: #2f7bd8;
    --warn-bg: #fff4e0; --orphan-bg: #fde8e8; }
  @media (prefers-color-scheme: dark) { :root { --bg: #14171c; --panel: #1c2027; --text: #e3e6ec; --muted: #8d95a5;
    --line: #2c323c; --warn-bg: #3a2f1a; --orphan-bg: #3d1f22; } }
  * { box-sizing: border-box; }
  body { margin: 0; font: 13px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; background: var(--bg); color: var(--text); }
  header { display: flex; flex-wrap: wrap; gap: 16px; align-items: baseline; padding: 12px 20px; background: var(--panel); border-bottom: 1px solid var(--line); }
  header h1 { margin: 0; font-size: 18px; }
  header .stat { color: var(--muted); }
  header .stat b { color: var(--text); }
  main { padding: 16px 20px; display: grid; gap: 16px; grid-template-columns: minmax(0, 3fr) minmax(280px, 1fr); align-items: start; }
  section { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; min-width: 0; }
  section.wide { grid-column: 1 / 2; }
  aside { grid-column: 2 / 3; grid-row: 1 / span 3; display: grid; gap: 16px; align-content: start; }
  h2 { margin: 0 0 8px; font-size: 14px; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; white-space: nowrap; }
  th { color: var(--muted); font-weight: 600; font-size: 12px; }
  td.wrap { white-space: normal; word-break: break-word; }
  .scroll { overflow-x: auto; }
  .muted { color: var(--muted); }
  .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
  .pill { display: inline-block; padding: 0 7px; border-radius: 9px; font-size: 11px; font-weight: 600; color: #fff; background: var(--muted); margin-right: 4px; }
  .chip { display: inline-block; padding: 0 5px; border: 1px solid var(--line); border-radius: 4px; font-size: 11px; margin-right: 3px; }
  .conn-live { background: var(--ok); } .conn-reconnecting, .conn-connecting { background: var(--timeout); }
  .conn-offline, .conn-unauthorized { background: var(--fail); }
  .s-succeeded { background: var(--ok); } .s-failed { background: var(--fail); } .s-timed-out { background: var(--timeout); }
  .s-aborted { background: var(--abort); } .s-missed { background: var(--missed); } .s-running { background: var(--run); }
  .b-paused { background: var(--timeout); } .b-conflict { background: var(--abort); } .b-noowner { background: var(--fail); }
  .alerts-count.hot { color: var(--fail); }
  tr.orphan td { background: var(--orphan-bg); }
  #auth { margin: 40px auto; max-width: 640px; padding: 16px 20px; background: var(--warn-bg); border: 1px solid var(--timeout); border-radius: 6px; font-size: 14px; }
  .timeline { display: grid; grid-template-columns: 160px minmax(0, 1fr); gap: 3px 10px; align-items: center; }
  .tl-name { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .strip { position: relative; height: 14px; background: var(--bg); border: 1px solid var(--line); border-radius: 3px; overflow: hidden; }
  .mark { position: absolute; top: 1px; bottom: 1px; min-width: 3px; border-radius: 2px; }
  .mark.s-missed { opacity: 0.75; }
  .axis { display: flex; justify-content: space-between; font-size: 11px; }
  .legend { margin-top: 8px; font-size: 11px; }
  ul.events { list-style: none; margin: 0; padding: 0; max-height: 520px; overflow-y: auto; }
  ul.events li { padding: 3px 0; border-bottom: 1px solid var(--line); word-break: break-word; }
  .empty { color: var(--muted); font-style: italic; }
  .actions-bar { display: flex; flex-wrap: wrap; gap: 12px; align-items: center; margin-bottom: 8px; }
  button.act { font: inherit; font-size: 12px; padding: 1px 8px; margin-right: 4px; cursor: pointer; }
  @media (max-width: 900px) { main { grid-template-columns: 1fr; } section.wide, aside { grid-column: auto; grid-row: auto; } }
</style>
</head>
<body>
<header>
  <h1 id="cluster">baton</h1>
  <span class="stat">store <b id="store">—</b></span>
  <span class="pill conn-connecting" data-testid="connection" id="connection">connecting</span>
  <span class="stat"><b id="node-count">0</b> nodes</span>
  <span class="stat alerts-count" id="alerts-stat"><b id="alert-count">0</b> active alerts</span>
  <span class="stat">store time <b id="store-time" class="mono">—</b></span>
</header>
<div id="auth" data-testid="auth" hidden>
  <strong>Not signed in.</strong> <span id="auth-detail"></span>
  <p>Open the URL printed by <code>baton serve</code> (it ends with <code>?token=…</code>) to sign in; the page then keeps you signed in with a cookie.</p>
</div>
<main id="main">
  <section class="wide">
    <h2>Nodes</h2>
    <div class="scroll"><table>
      <thead><tr><th>id</th><th>host:pid</th><th>version</th><th>labels</th><th>session age</th><th>expires in</th><th>tasks owned</th></tr></thead>
      <tbody data-testid="nodes" id="nodes"></tbody>
    </table></div>
  </section>
  <section class="wide">
    <h2>Tasks</h2>
    <div class="actions-bar">
      <label>Token for actions <input type="password" id="action-token" data-testid="action-token" autocomplete="off" spellcheck="false" placeholder="the monitor's token"></label>
      <span id="action-result" data-testid="action-result" class="muted" role="status"></span>
    </div>
    <div class="scroll"><table>
      <thead><tr><th>name</th><th>mode</th><th>schedule</th><th>owner</th><th>node</th><th>token</th><th>last run</th><th>next tick</th><th></th><th>actions</th></tr></thead>
      <tbody data-testid="tasks" id="tasks"></tbody>
    </table></div>
  </section>
  <section class="wide">
    <h2>Runs, last 5 minutes</h2>
    <div class="timeline" id="timeline"></div>
    <div class="timeline"><span></span><div class="axis muted"><span>−5 min</span><span>−4</span><span>−3</span><span>−2</span><span>−1</span><span>now</span></div></div>
    <div class="legend muted" id="legend"></div>
  </section>
  <section class="wide" id="relays-section" hidden>
    <h2>Relays</h2>
    <div class="scroll"><table>
      <thead><tr><th>relay / node</th><th>level</th><th>outbox</th><th>oldest unpublished</th><th>held</th><th>parked</th><th>queued</th><th>dead letters</th><th></th></tr></thead>
      <tbody data-testid="relays" id="relays"></tbody>
    </table></div>
  </section>
  <aside>
    <section>
      <h2>Active alerts</h2>
      <table><thead><tr><th>rule</th><th>subject</th><th>since</th></tr></thead><tbody data-testid="alerts" id="alerts"></tbody></table>
    </section>
    <section>
      <h2>Recent events</h2>
      <ul class="events" data-testid="events" id="events"></ul>
    </section>
  </aside>
</main>
<script>
'use strict';
var WINDOW_MS = 5 * 60 * 1000;
var MAX_EVENTS = 50;
var RETRY_MS = 3000;
var OUTCOMES = ['succeeded', 'failed', 'timed-out', 'aborted', 'missed', 'running'];
var EVENT_TYPES = ['node:joined', 'node:left', 'owner:changed', 'run:started', 'run:succeeded', 'run:failed', 'tick:missed', 'alert:raised', 'alert:resolved', 'task:action'];
var LISTED = { 'node:joined': 1, 'node:left': 1, 'owner:changed': 1, 'run:failed': 1, 'tick:missed': 1, 'alert:raised': 1, 'alert:resolved': 1, 'task:action': 1 };

var state = {
  status: null,      // the latest MonitorStatus
  statusFrame: 0,    // frame time when it arrived: "now" = status.at + (frame - statusFrame)
  runs: new Map(),   // unit -> Map(run key -> RunRecord)
  events: [],        // newest first, at most MAX_EVENTS
  seen: new Set(),   // seq@at of the events applied
  stream: null,
  retryAt: 0,        // frame time of the next attempt to reconnect, 0 when none is due
  lastSecond: -1,
};

// ---- DOM helpers: data only ever goes through textContent and setAttribute -------------------------
function $(id) { return document.getElementById(id); }
function el(tag, attrs) {
  var node = document.createElement(tag);
  if (attrs) for (var name in attrs) if (attrs[name] !== undefined && attrs[name] !== null) node.setAttribute(name, String(attrs[name]));
  for (var i = 2; i < arguments.length; i++) {
    var child = arguments[i];
    if (child === null || child === undefined || child === false) continue;
    node.appendChild(typeof child === 'object' ? child : document.createTextNode(String(child)));
  }
  return node;
}
function pill(text, cls, title) { return el('span', { class: 'pill ' + cls, title: title }, text); }

// ---- time, all in store time --------------------------------------------------------------------------
function frameNow() { var t = document.timeline.currentTime; return typeof t === 'number' ? t : state.statusFrame; }
function storeNow() { return state.status ? state.status.at + Math.max(0, frameNow() - state.statusFrame) : 0; }
function sinceSnapshot() { return state.status ? Math.max(0, frameNow() - state.statusFrame) : 0; }
function fmtDur(ms) {
  var neg = ms < 0; ms = Math.abs(ms);
  var s = Math.floor(ms / 1000), text;
  if (ms < 1000) text = Math.round(ms) + ' ms';
  else if (ms < 10000) text = (ms / 1000).toFixed(1) + ' s';
  else if (s < 60) text = s + ' s';
  else if (s < 3600) text = Math.floor(s / 60) + 'm ' + String(s % 60).padStart(2, '0') + 's';
  else if (s < 86400) text = Math.floor(s / 3600) + 'h ' + String(Math.floor(s / 60) % 60).padStart(2, '0') + 'm';
  else text = Math.floor(s / 86400) + 'd ' + (Math.floor(s / 3600) % 24) + 'h';
  return neg ? '-' + text : text;
}
function relative(t) { var d = storeNow() - t; return d >= 0 ? fmtDur(d) + ' ago' : 'in ' + fmtDur(-d); }
function iso(t) { return typeof t === 'number' ? new Date(t).toISOString() : ''; }
function clock(t) { return new Date(t).toISOString().slice(11, 19); }
// An error's first line, shortened (the whole error, stack included, goes into the title).
function firstLine(text) { var line = String(text).split(String.fromCharCode(10))[0]; return line.length > 120 ? line.slice(0, 120) + '…' : line; }
// Cells whose text depends on "now": refreshed every second by tick().
//   data-ago=T: "… ago" / "in …"; data-grow=MS: a duration growing since the snapshot; data-shrink=MS: shrinking.
function agoCell(t, attrs) { var a = attrs || {}; a['data-ago'] = t; a.title = a.title || iso(t); return el('span', a, relative(t)); }
function refreshClocks() {
  document.querySelectorAll('[data-ago]').forEach(function (n) { n.textContent = relative(Number(n.getAttribute('data-ago'))); });
  var dt = sinceSnapshot();
  document.querySelectorAll('[data-grow]').forEach(function (n) { n.textContent = fmtDur(Number(n.getAttribute('data-grow')) + dt); });
  document.querySelectorAll('[data-shrink]').forEach(function (n) { n.textContent = fmtDur(Math.max(0, Number(n.getAttribute('data-shrink')) - dt)); });
  if (state.status) $('store-time').textContent = clock(storeNow()) + ' UTC';
}

// ---- rendering ---------------------------------------------------------------------------------------
function hostPid(o) { return o.host + ':' + o.pid; }
function renderHeader() {
  var s = state.status;
  $('cluster').textContent = s.cluster;
  document.title = 'baton · ' + s.cluster;
  $('store').textContent = s.store;
  $('node-count').textContent = String(s.nodes.length);
  $('alert-count').textContent = String(s.alerts.length);
  $('alerts-stat').classList.toggle('hot', s.alerts.length > 0);
}
function setConnection(text) {
  var c = $('connection');
  c.textContent = text;
  c.className = 'pill conn-' + text;
}
function renderNodes() {
  var rows = state.status.nodes.slice().sort(function (a, b) { return a.id < b.id ? -1 : a.id > b.id ? 1 : 0; }).map(function (n) {
    var labels = el('td', { class: 'wrap' });
    Object.keys(n.labels || {}).sort().forEach(function (k) { labels.appendChild(el('span', { class: 'chip' }, k + '=' + n.labels[k])); });
    return el('tr', { 'data-node': n.id },
      el('td', { class: 'mono' }, n.id),
      el('td', { class: 'mono', title: 'session ' + n.sessionId }, hostPid(n)),
      el('td', null, n.version),
      labels,
      el('td', { title: 'started ' + iso(n.startedAt) }, el('span', { 'data-grow': n.sessionAgeMs }, fmtDur(n.sessionAgeMs))),
      el('td', { title: n.lastRenewalAt ? 'renewed ' + iso(n.lastRenewalAt) : null }, el('span', { 'data-shrink': n.expiresInMs }, fmtDur(n.expiresInMs))),
      el('td', { title: n.owns.join(', ') }, String(n.owns.length)));
  });
  $('nodes').replaceChildren.apply($('nodes'), rows.length ? rows : [el('tr', null, el('td', { colspan: 7, class: 'empty' }, 'No live nodes.'))]);
}
function lastRunCell(run) {
  if (!run) return el('td', { class: 'muted' }, 'never');
  var parts = [pill(run.status, 's-' + run.status, run.error || undefined)];
  var when = run.startedAt !== undefined ? run.startedAt : run.tick;
  parts.push(agoCell(when));
  if (run.status === 'missed' && run.missed) parts.push(el('span', { class: 'muted' }, ' · ' + run.missed.count + ' ticks, ' + run.missed.reason));
  if (typeof run.durationMs === 'number') parts.push(el('span', { class: 'muted' }, ' · ' + fmtDur(run.durationMs)));
  if (typeof run.lateMs === 'number' && run.lateMs > 0) parts.push(el('span', { class: 'muted' }, ' · late ' + fmtDur(run.lateMs)));
  if (run.error) parts.push(el('div', { class: 'muted wrap', title: run.error }, firstLine(run.error)));
  // A command of baton agent: its exit status, the tail of its output in the tooltip.
  if (run.output) parts.push(el('div', { class: 'muted wrap', title: ['stdout:', run.output.stdout, 'stderr:', run.output.stderr].join(String.fromCharCode(10)) },
    'exit ' + (run.output.signal || run.output.exitCode) + (run.output.stderr ? ' · ' + firstLine(run.output.stderr) : run.output.stdout ? ' · ' + firstLine(run.output.stdout) : '')));
  return el.apply(null, ['td', { class: 'wrap' }].concat(parts));
}
function renderTasks() {
  var rows = state.status.tasks.map(function (t) {
    var o = t.owner;
    var badges = el('td', null,
      t.paused && pill('paused', 'b-paused', 'paused cluster-wide'),
      t.conflict && pill('conflict', 'b-conflict', 'live nodes declare this task with different options'),
      !o && pill('no owner', 'b-noowner'));
    return el('tr', { 'data-task': t.unit, class: o ? null : 'orphan' },
      el('td', { class: 'mono', title: t.task !== t.unit ? 'task ' + t.task : null }, t.unit),
      el('td', null, t.mode),
      el('td', { class: 'wrap', title: t.declaredBy + ' declaring node(s)' }, t.schedules.join(' | ') || '—'),
      el('td', { class: 'mono', 'data-field': 'owner', 'data-owner-node': o ? o.node : null, title: o ? 'node ' + o.node + ', since ' + iso(o.since) : 'no owner' }, o ? hostPid(o) : '—'),
      el('td', { class: 'mono', 'data-field': 'owner-node' }, o ? o.node : '—'),
      el('td', { class: 'mono' }, o ? o.token : '—'),
      lastRunCell(t.lastRun),
      el('td', null, typeof t.nextTick === 'number' ? agoCell(t.nextTick) : '—'),
      badges,
      el('td', null,
        el('button', { class: 'act', type: 'button', 'data-action': 'trigger', 'data-act-task': t.task, title: 'run ' + t.task + ' once now on its owner' }, 'trigger'),
        el('button', { class: 'act', type: 'button', 'data-action': t.paused ? 'resume' : 'pause', 'data-act-task': t.task, title: (t.paused ? 'resume ' : 'pause ') + t.task + ' cluster-wide' }, t.paused ? 'resume' : 'pause')));
  });
  $('tasks').replaceChildren.apply($('tasks'), rows.length ? rows : [el('tr', null, el('td', { colspan: 10, class: 'empty' }, 'No tasks declared.'))]);
}
function renderAlerts() {
  var rows = state.status.alerts.map(function (a) {
    return el('tr', { 'data-alert': a.id, title: a.message },
      el('td', null, pill(a.rule, 's-failed')),
      el('td', { class: 'wrap' }, el('div', { class: 'mono' }, a.subject), el('div', { class: 'muted' }, a.message)),
      el('td', null, agoCell(a.since)));
  });
  $('alerts').replaceChildren.apply($('alerts'), rows.length ? rows : [el('tr', null, el('td', { colspan: 3, class: 'empty' }, 'No active alerts.'))]);
}
function count(n) { return n === null || n === undefined ? '?' : String(n); }
function renderRelays() {
  var views = state.status.relays || [];
  $('relays-section').hidden = views.length === 0;
  var rows = [];
  views.forEach(function (v) {
    v.nodes.forEach(function (n, i) {
      var problem = n.error || (i === 0 ? v.brokerError : null);
      rows.push(el('tr', { 'data-relay': v.relay + '/' + n.node, class: problem ? 'orphan' : null },
        el('td', { class: 'mono' }, v.relay + ' / ' + n.node),
        el('td', null, n.level),
        el('td', { 'data-field': 'outbox' }, count(n.outboxDepth)),
        el('td', null, n.outboxLagMs === null ? '?' : n.outboxLagMs === 0 ? '—' : fmtDur(n.outboxLagMs)),
        el('td', null, count(n.heldDepth)),
        el('td', null, count(n.parkedDepth)),
        el('td', null, count(n.queueDepth)),
        el('td', { 'data-field': 'dead-letters' }, i === 0 ? count(v.deadLetterDepth) : ''),
        el('td', { class: 'wrap' }, problem ? pill('unreadable', 's-failed', problem) : null)));
    });
  });
  $('relays').replaceChildren.apply($('relays'), rows);
}
function describeOwner(o) { return o ? hostPid(o) + ' (' + o.node + ')' : 'nobody'; }
function describe(e) {
  switch (e.type) {
    case 'node:joined': return e.node.id + ' joined (' + hostPid(e.node) + ')';
    case 'node:left': return e.node.id + ' left (' + hostPid(e.node) + ')';
    case 'owner:changed': return e.unit + ': owner ' + describeOwner(e.from) + ' → ' + describeOwner(e.to);
    case 'run:failed': return e.unit + ' ' + e.run.status + (e.run.node ? ' on ' + e.run.node : '') + (e.run.error ? ': ' + firstLine(e.run.error) : '');
    case 'tick:missed': return e.unit + ' missed ' + (e.run.missed ? e.run.missed.count + ' tick(s), ' + e.run.missed.reason : 'a tick');
    case 'alert:raised': return e.alert.rule + ' ' + e.alert.subject + ': ' + e.alert.message;
    case 'alert:resolved': return e.alert.rule + ' ' + e.alert.subject + ' resolved';
    case 'task:action': return e.task + ': ' + e.action.action + ' by ' + e.action.by + ' from ' + e.action.address;
    default: return e.type;
  }
}
var EVENT_CLASS = { 'node:joined': 's-succeeded', 'node:left': 's-aborted', 'owner:changed': 's-running', 'run:failed': 's-failed',
  'tick:missed': 's-missed', 'alert:raised': 's-failed', 'alert:resolved': 's-succeeded', 'task:action': 's-running' };
function renderEvents() {
  var items = state.events.map(function (e) {
    return el('li', { 'data-seq': e.seq, 'data-type': e.type, title: e.run && e.run.error ? e.run.error : null },
      el('span', { class: 'mono muted', title: iso(e.at) }, clock(e.at)), ' ',
      pill(e.type, EVENT_CLASS[e.type] || ''), ' ', describe(e));
  });
  $('events').replaceChildren.apply($('events'), items.length ? items : [el('li', { class: 'empty' }, 'No events yet.')]);
}

// ---- timeline ------------------------------------------------------------------------------------------
function runKey(r) { return r.tick + '/' + (r.triggerId || ''); }
function addRun(unit, run) {
  if (!unit || !run || typeof run.tick !== 'number') return;
  var runs = state.runs.get(unit);
  if (!runs) state.runs.set(unit, (runs = new Map()));
  var key = runKey(run), known = runs.get(key);
  // A finished record replaces the running one of the same tick, never the other way round.
  if (known && known.status !== 'running' && run.status === 'running') return;
  runs.set(key, run);
}
function pruneRuns(now) {
  state.runs.forEach(function (runs) {
    runs.forEach(function (r, key) { if (Math.max(r.endedAt || 0, r.startedAt || 0, r.tick) < now - WINDOW_MS - 60000) runs.delete(key); });
  });
}
function renderTimeline() {
  var now = storeNow(), from = now - WINDOW_MS, strips = [];
  var units = state.status.tasks.map(function (t) { return t.unit; });
  state.runs.forEach(function (_, unit) { if (units.indexOf(unit) < 0) units.push(unit); });
  units.forEach(function (unit) {
    var strip = el('div', { class: 'strip', 'data-timeline': unit });
    var runs = state.runs.get(unit) || new Map(), newest = -Infinity;
    runs.forEach(function (r) { newest = Math.max(newest, r.tick); });
    runs.forEach(function (r) {
      var start = r.status === 'missed' && r.missed ? r.missed.from : (r.startedAt !== undefined ? r.startedAt : r.tick);
      // Only the newest run can still be running; an older "running" record (its node died) is a point.
      var end = r.endedAt !== undefined ? r.endedAt : r.status === 'missed' ? r.tick : r.status === 'running' && r.tick === newest ? now : start;
      if (end < from || start > now) return;
      var left = (Math.max(start, from) - from) / WINDOW_MS * 100, width = (Math.min(end, now) - Math.max(start, from)) / WINDOW_MS * 100;
      var title = unit + ' · tick ' + clock(r.tick) + ' · ' + r.status + (r.node ? ' on ' + r.node : '') +
        (typeof r.durationMs === 'number' ? ' · ' + fmtDur(r.durationMs) : '') + (r.missed ? ' · ' + r.missed.count + ' missed (' + r.missed.reason + ')' : '') +
        (r.error ? ' · ' + firstLine(r.error) : '');
      strip.appendChild(el('div', { class: 'mark s-' + r.status, 'data-status': r.status, title: title, style: 'left:' + left.toFixed(3) + '%;width:' + width.toFixed(3) + '%' }));
    });
    strips.push(el('div', { class: 'tl-name mono', title: unit }, unit), strip);
  });
  $('timeline').replaceChildren.apply($('timeline'), strips.length ? strips : [el('span', { class: 'empty' }, 'No tasks.')]);
}

// ---- data in -----------------------------------------------------------------------------------------
function applyStatus(status) {
  if (!Array.isArray(status.alerts)) status.alerts = [];
  if (!Array.isArray(status.relays)) status.relays = [];
  state.status = status;
  state.statusFrame = frameNow();
  status.tasks.forEach(function (t) { if (t.lastRun) addRun(t.unit, t.lastRun); });
  showData(true);
  renderHeader(); renderNodes(); renderTasks(); renderAlerts(); renderRelays(); renderTimeline();
  refreshClocks();
}
function applyEvent(e) {
  // Replayed after a reconnect: same seq and stamp. (A restarted monitor numbers from 1 again, with later stamps.)
  var key = e.seq + '@' + e.at;
  if (state.seen.has(key)) return;
  state.seen.add(key);
  if (state.seen.size > 5000) state.seen = new Set(Array.from(state.seen).slice(-1000));
  if (e.run) addRun(e.unit, e.run);
  if (!LISTED[e.type]) return;
  state.events.unshift(e);
  state.events.sort(function (a, b) { return b.at - a.at || b.seq - a.seq; });
  if (state.events.length > MAX_EVENTS) state.events.length = MAX_EVENTS;
  renderEvents();
}
function showData(visible) {
  $('main').hidden = !visible;
  $('auth').hidden = visible;
}
function showUnauthorized(detail) {
  if (state.stream) { state.stream.close(); state.stream = null; }
  state.status = null;
  state.runs.clear();
  state.events = [];
  ['nodes', 'tasks', 'alerts', 'events', 'timeline', 'relays'].forEach(function (id) { $(id).replaceChildren(); });
  $('auth-detail').textContent = detail ? '(' + detail + ')' : '';
  showData(false);
  setConnection('unauthorized');
}
function getJson(path) {
  return fetch(path, { credentials: 'same-origin', cache: 'no-store', headers: { accept: 'application/json' } }).then(function (res) {
    return res.json().catch(function () { return {}; }).then(function (body) { return { status: res.status, body: body }; });
  });
}
function connect() {
  if (state.stream) state.stream.close();
  var es = new EventSource('/api/events');
  state.stream = es;
  es.onopen = function () { setConnection('live'); };
  es.onerror = function () {
    if (es.readyState === EventSource.CLOSED) {
      // The server refused the stream (a 401 after a restart with a new token, or an error): ask /api/status why, later.
      es.close(); state.stream = null;
      setConnection('offline');
      state.retryAt = frameNow() + RETRY_MS;
    } else setConnection('reconnecting'); // EventSource retries by itself
  };
  es.addEventListener('status', function (m) { applyStatus(JSON.parse(m.data)); });
  EVENT_TYPES.forEach(function (type) { es.addEventListener(type, function (m) { applyEvent(JSON.parse(m.data)); }); });
}
// The runs of the last minutes: GET /api/runs?limit=500 answers with the monitor's few newest runs of each
// unit, so each unit's history is asked for too (300 runs: five minutes of a one-second task).
function seedTimeline(units) {
  var asks = [{ path: '/api/runs?limit=500', unit: null }].concat(units.slice(0, 200).map(function (u) {
    return { path: '/api/runs?limit=300&unit=' + encodeURIComponent(u), unit: u };
  }));
  return Promise.all(asks.map(function (ask) {
    return getJson(ask.path).then(function (res) {
      if (res.status !== 200 || !res.body || !Array.isArray(res.body.runs)) return;
      res.body.runs.forEach(function (run) { addRun(ask.unit || run.unit, run); });
    }).catch(function () { /* the timeline fills from the stream */ });
  })).then(function () { if (state.status) renderTimeline(); });
}
// The events the monitor still holds, so a reload does not empty the list (the stream then adds the new ones;
// applyEvent drops any it already has).
function loadRecentEvents() {
  return getJson('/api/events/recent?limit=' + MAX_EVENTS).then(function (res) {
    if (res.status === 200 && res.body && Array.isArray(res.body.events)) res.body.events.forEach(applyEvent);
  }).catch(function () { /* the stream brings the next ones */ });
}
// Write actions take the token in a header (never the cookie, which other sites' requests would carry):
// the operator types it once; it stays in this page's memory only.
function act(action, task) {
  var token = $('action-token').value.trim();
  var out = $('action-result');
  if (!token) { out.textContent = 'Enter the monitor token to ' + action + ' ' + task + '.'; return; }
  out.textContent = action + ' ' + task + '…';
  fetch('/api/tasks/' + encodeURIComponent(task) + '/' + action, { method: 'POST', credentials: 'omit', cache: 'no-store', headers: { authorization: 'Bearer ' + token } })
    .then(function (res) { return res.json().catch(function () { return {}; }).then(function (body) { return { status: res.status, body: body }; }); })
    .then(function (r) {
      out.textContent = r.status === 200 ? action + ' ' + task + ': done' + (r.body.trigger ? ' (trigger ' + r.body.trigger + ')' : '') : action + ' ' + task + ' refused: ' + (r.body.error || 'HTTP ' + r.status);
    })
    .catch(function (error) { out.textContent = action + ' ' + task + ' failed: ' + error.message; });
}
function start() {
  return getJson('/api/status').then(function (r) {
    if (r.status === 401) return showUnauthorized(r.body && r.body.error);
    // Otherwise (a 503 before the monitor's first snapshot, say) the stream brings the status when there is one.
    if (r.status === 200) applyStatus(r.body);
    return loadRecentEvents().then(function () { return r; });
  }).then(function (r) {
    if (!r) return;
    connect();
    return seedTimeline(r.status === 200 ? r.body.tasks.map(function (t) { return t.unit; }) : []);
  }).catch(function () {
    setConnection('offline');
    state.retryAt = frameNow() + RETRY_MS;
  });
}

// One loop on animation frames: once a second (of frame time) refresh the clocks and the timeline,
// and retry a stream the server closed.
function tick(frame) {
  var second = Math.floor(frame / 1000);
  if (second !== state.lastSecond) {
    state.lastSecond = second;
    if (state.status) { refreshClocks(); pruneRuns(storeNow()); renderTimeline(); }
  }
  if (state.retryAt && frame >= state.retryAt) { state.retryAt = 0; start(); }
  requestAnimationFrame(tick);
}

(function init() {
  var legend = $('legend');
  OUTCOMES.forEach(function (o) { legend.appendChild(pill(o, 's-' + o)); });
  // The sign-in token is in the cookie now: keep it out of the address bar, history and screenshots.
  var url = new URL(location.href);
  if (url.searchParams.has('token')) { url.searchParams.delete('token'); history.replaceState(null, '', url.pathname + url.search + url.hash); }
  $('tasks').addEventListener('click', function (e) {
    var button = e.target && e.target.closest ? e.target.closest('button[data-action]') : null;
    if (button) act(button.getAttribute('data-action'), button.getAttribute('data-act-task'));
  });
  requestAnimationFrame(tick);
  start();
})();
</script>
</body>
</html>
`;
