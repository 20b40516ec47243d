// The monitor's dashboard (served with the CSP of http-api.ts: scripts and styles from this origin only).
//
// Reads GET /api/status once, the events the monitor still holds (GET /api/events/recent) and the owner
// changes it kept (GET /api/owners), so a reload keeps both; then follows GET /api/events: one `status`,
// then `status:delta` messages carrying only what changed (status-delta.ts) and the typed events. Each task
// row has trigger and pause / resume buttons: they send the token the operator typed into the page (kept in
// the page's memory only) in the Authorization header, as write actions require (never the cookie). A
// task's name opens its detail (detail.js): runs, output, owners over time, alerts, linked to each other.
//
// Test hooks: data-testid = nodes, tasks, alerts, events, relays, connection, auth, action-token,
// action-result, task-filter, task-state, task-group, task-shown, detail, detail-runs, detail-owners,
// detail-alerts, run-view; buttons button[data-action][data-act-task]; rows tr[data-node], tr[data-task],
// tr[data-relay] (relay/node), tr[data-run] in the detail; cells [data-field=owner] (host:pid or —) and
// [data-field=owner-node]; timeline strips [data-timeline=UNIT] with run marks [data-status] and owner
// marks [data-owner-change=KIND] (data-gap: the measured gap in ms).
import { $, el, pill, link, agoCell, clock, iso, fmtDur, hostPid, getJson, taskHref, taskOfUnit, firstLine, refreshClocks, storeNow, setStoreTime, frameNow } from './core.js';
import { setTasks, updateTasks, setNodes, renderTasks, shownUnits, wireTaskControls } from './tasks.js';
import { followRoute, runsChanged, ownersChanged, wireDetail, renderAlerts as renderDetailAlerts } from './detail.js';

const WINDOW_MS = 5 * 60 * 1000;
const MAX_EVENTS = 50;
const RETRY_MS = 3000;
/** Strips on the timeline at most: the first of the tasks shown (filter the table to see others). */
const MAX_STRIPS = 40;
const OUTCOMES = ['succeeded', 'failed', 'timed-out', 'aborted', 'missed', 'running'];
const EVENT_TYPES = ['node:joined', 'node:left', 'owner:changed', 'run:started', 'run:succeeded', 'run:failed', 'tick:missed', 'alert:raised', 'alert:resolved', 'task:action'];
const LISTED = new Set(['node:joined', 'node:left', 'owner:changed', 'run:failed', 'tick:missed', 'alert:raised', 'alert:resolved', 'task:action']);
const EVENT_CLASS = { 'node:joined': 's-succeeded', 'node:left': 's-aborted', 'owner:changed': 's-running', 'run:failed': 's-failed',
  'tick:missed': 's-missed', 'alert:raised': 's-failed', 'alert:resolved': 's-succeeded', 'task:action': 's-running' };

const state = {
  status: null,        // cluster, store, nodes, alerts, relays, locks, monitors as last sent (tasks live in tasks.js)
  runs: new Map(),     // unit -> Map(run key -> RunRecord)
  owners: new Map(),   // unit -> Map(seq or at/token -> owner change)
  seeded: new Set(),   // units whose history was read for the timeline
  events: [],          // newest first, at most MAX_EVENTS
  seen: new Set(),     // seq@at of the events applied
  stream: null,
  retryAt: 0,          // frame time of the next attempt to reconnect, 0 when none is due
  lastSecond: -1,
};

// ---- rendering -----------------------------------------------------------------------------------------
function setConnection(text) { const c = $('connection'); c.textContent = text; c.className = 'pill conn-' + text; }
function renderHeader() {
  const s = state.status;
  $('cluster').textContent = s.cluster;
  document.title = 'baton · ' + s.cluster;
  $('store').textContent = s.store;
  $('node-count').textContent = String(s.nodes.length);
  $('alert-count').textContent = String(s.alerts.length);
  $('alerts-stat').classList.toggle('hot', s.alerts.length > 0);
}
function renderNodes() {
  const rows = state.status.nodes.slice().sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).map((n) => {
    const labels = el('td', { class: 'wrap' });
    Object.keys(n.labels || {}).sort().forEach((k) => labels.appendChild(el('span', { class: 'chip' }, k + '=' + n.labels[k])));
    return el('tr', { 'data-node': n.id },
      el('td', { class: 'mono' }, n.id),
      el('td', { class: 'mono', title: 'session ' + n.sessionId }, hostPid(n)),
      el('td', null, n.version),
      labels,
      el('td', { title: 'started ' + iso(n.startedAt) }, el('span', { 'data-since': n.openedAt }, fmtDur(n.sessionAgeMs))),
      el('td', { title: n.lastRenewalAt ? 'renewed ' + iso(n.lastRenewalAt) : null }, el('span', { 'data-until': n.expiresAt }, fmtDur(n.expiresInMs))),
      el('td', { title: n.owns.join(', ') }, String(n.owns.length)));
  });
  $('nodes').replaceChildren(...(rows.length ? rows : [el('tr', null, el('td', { colspan: 7, class: 'empty' }, 'No live nodes.'))]));
}
function renderAlerts() {
  const rows = state.status.alerts.map((a) => el('tr', { 'data-alert': a.id, title: a.message },
    el('td', null, pill(a.rule, 's-failed')),
    el('td', { class: 'wrap' }, el('div', { class: 'mono' }, a.rule.startsWith('relay') || a.rule === 'node-flapping' ? a.subject : link(taskHref(taskOfUnit(a.subject)), a.subject)), el('div', { class: 'muted' }, a.message)),
    el('td', null, agoCell(a.since))));
  $('alerts').replaceChildren(...(rows.length ? rows : [el('tr', null, el('td', { colspan: 3, class: 'empty' }, 'No active alerts.'))]));
  renderDetailAlerts(state.status.alerts, state.events);
}
function count(n) { return n === null || n === undefined ? '?' : String(n); }
function renderRelays() {
  const views = state.status.relays || [];
  $('relays-section').hidden = views.length === 0;
  const rows = [];
  views.forEach((v) => v.nodes.forEach((n, i) => {
    const problem = n.error || (i === 0 ? v.brokerError : null);
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
  }));
  $('relays').replaceChildren(...rows);
}
function describeOwner(o) { return o ? hostPid(o) + ' (' + o.node + ')' : 'nobody'; }
function describe(e) {
  switch (e.type) {
    case 'node:joined': return e.node.id + ' joined (' + hostPid(e.node) + ')';
    case 'node:left': return e.node.id + ' left (' + hostPid(e.node) + ')';
    case 'owner:changed': return e.unit + ': ' + (e.kind ? e.kind + ', ' : '') + 'owner ' + describeOwner(e.from || e.previous) + ' → ' + describeOwner(e.to) + (typeof e.gapMs === 'number' ? ', gap ' + fmtDur(e.gapMs) : '');
    case 'run:failed': return e.unit + ' ' + e.run.status + (e.run.node ? ' on ' + e.run.node : '') + (e.run.error ? ': ' + firstLine(e.run.error) : '');
    case 'tick:missed': return e.unit + ' missed ' + (e.run.missed ? e.run.missed.count + ' tick(s), ' + e.run.missed.reason : 'a tick');
    case 'alert:raised': return e.alert.rule + ' ' + e.alert.subject + ': ' + e.alert.message;
    case 'alert:resolved': return e.alert.rule + ' ' + e.alert.subject + ' resolved';
    case 'task:action': return e.task + ': ' + e.action.action + ' by ' + e.action.by + ' from ' + e.action.address;
    default: return e.type;
  }
}
function eventTask(e) { return e.task || (e.unit ? taskOfUnit(e.unit) : e.alert && !e.alert.rule.startsWith('relay') && e.alert.rule !== 'node-flapping' ? taskOfUnit(e.alert.subject) : null); }
function renderEvents() {
  const items = state.events.map((e) => {
    const task = eventTask(e);
    return el('li', { 'data-seq': e.seq, 'data-type': e.type, title: e.run && e.run.error ? e.run.error : null },
      el('span', { class: 'mono muted', title: iso(e.at) }, clock(e.at)), ' ',
      pill(e.type, EVENT_CLASS[e.type] || ''), ' ', describe(e), task ? ' ' : null, task ? link(taskHref(task), '›', { title: 'open ' + task }) : null);
  });
  $('events').replaceChildren(...(items.length ? items : [el('li', { class: 'empty' }, 'No events yet.')]));
}

// ---- timeline: runs, and owner changes with their gap ------------------------------------------------
function runKey(r) { return r.tick + '/' + (r.triggerId || ''); }
function addRun(unit, run) {
  if (!unit || !run || typeof run.tick !== 'number') return;
  let runs = state.runs.get(unit);
  if (!runs) state.runs.set(unit, (runs = new Map()));
  const key = runKey(run), known = runs.get(key);
  // A finished record replaces the running one of the same tick, never the other way round.
  if (known && known.status !== 'running' && run.status === 'running') return;
  runs.set(key, run);
}
function addOwnerChange(c) {
  if (!c.unit || typeof c.at !== 'number') return;
  let changes = state.owners.get(c.unit);
  if (!changes) state.owners.set(c.unit, (changes = new Map()));
  changes.set(c.at + '/' + (c.to ? c.to.token : '-'), c);
}
function prune(now) {
  const old = now - WINDOW_MS - 60000;
  state.runs.forEach((runs) => runs.forEach((r, key) => { if (Math.max(r.endedAt || 0, r.startedAt || 0, r.tick) < old) runs.delete(key); }));
  state.owners.forEach((changes) => changes.forEach((c, key) => { if (c.at < old) changes.delete(key); }));
}
function position(node, start, end, from) {
  node.style.left = ((Math.max(start, from) - from) / WINDOW_MS * 100).toFixed(3) + '%';
  if (end !== undefined) node.style.width = ((end - Math.max(start, from)) / WINDOW_MS * 100).toFixed(3) + '%';
  return node;
}
function renderTimeline() {
  const now = storeNow(), from = now - WINDOW_MS, strips = [];
  const units = shownUnits();
  units.slice(0, MAX_STRIPS).forEach((unit) => {
    const strip = el('div', { class: 'strip', 'data-timeline': unit });
    const runs = state.runs.get(unit) || new Map();
    let newest = -Infinity;
    runs.forEach((r) => { newest = Math.max(newest, r.tick); });
    runs.forEach((r) => {
      const start = r.status === 'missed' && r.missed ? r.missed.from : (r.startedAt !== undefined ? r.startedAt : r.tick);
      // Only the newest run can still be running; an older "running" record (its node died) is a point.
      const end = r.endedAt !== undefined ? r.endedAt : r.status === 'missed' ? r.tick : r.status === 'running' && r.tick === newest ? now : start;
      if (end < from || start > now) return;
      const title = unit + ' · tick ' + clock(r.tick) + ' · ' + r.status + (r.node ? ' on ' + r.node : '') +
        (typeof r.durationMs === 'number' ? ' · ' + fmtDur(r.durationMs) : '') + (r.missed ? ' · ' + r.missed.count + ' missed (' + r.missed.reason + ')' : '') +
        (r.error ? ' · ' + firstLine(r.error) : '');
      strip.appendChild(position(el('div', { class: 'mark s-' + r.status, 'data-status': r.status, title }), start, Math.min(end, now), from));
    });
    (state.owners.get(unit) || new Map()).forEach((c) => {
      // Marked where the new owner took the unit (the end of the gap); a lost owner where it was seen lost.
      const at = c.to ? c.to.since : c.at;
      if (at < from || at > now) return;
      const title = unit + ' · ' + (c.kind || 'owner change') + ' at ' + clock(at) + ': ' + describeOwner(c.from || c.previous) + ' → ' + describeOwner(c.to) + (typeof c.gapMs === 'number' ? ' · gap ' + fmtDur(c.gapMs) : '');
      strip.appendChild(position(el('div', { class: 'owner-mark k-' + (c.kind || 'handover'), 'data-owner-change': c.kind || 'changed', 'data-gap': c.gapMs, title }), at, undefined, from));
    });
    strips.push(el('div', { class: 'tl-name mono', title: unit }, link(taskHref(taskOfUnit(unit)), unit)), strip);
  });
  $('timeline').replaceChildren(...(strips.length ? strips : [el('span', { class: 'empty' }, 'No tasks shown.')]));
  $('timeline-note').textContent = units.length > MAX_STRIPS ? '(the first ' + MAX_STRIPS + ' of the ' + units.length + ' tasks shown: filter the table for others)' : '';
  seedTimeline(units.slice(0, MAX_STRIPS));
}

// ---- data in ---------------------------------------------------------------------------------------------
/** Node clocks as store times, so they keep counting between the lists the monitor sends. */
function withClockTimes(nodes, at) { return nodes.map((n) => ({ ...n, openedAt: at - n.sessionAgeMs, expiresAt: at + n.expiresInMs })); }
function applyStatus(status) {
  setStoreTime(status.at);
  state.status = { ...status, nodes: withClockTimes(status.nodes, status.at), alerts: status.alerts || [], relays: status.relays || [] };
  delete state.status.tasks;
  setTasks(status.tasks);
  status.tasks.forEach((t) => { if (t.lastRun) addRun(t.unit, t.lastRun); });
  setNodes(state.status.nodes);
  showData(true);
  renderAll();
}
function applyDelta(delta) {
  if (!state.status) return;
  setStoreTime(delta.at);
  if (delta.nodes) { state.status.nodes = withClockTimes(delta.nodes, delta.at); setNodes(state.status.nodes); renderNodes(); }
  if (delta.nodeClocks) {
    const clocks = new Map(delta.nodeClocks.map((c) => [c.sessionId, c]));
    state.status.nodes = withClockTimes(state.status.nodes.map((n) => ({ ...n, ...clocks.get(n.sessionId) })), delta.at);
    renderNodes();
  }
  ['monitors', 'locks', 'alerts', 'relays'].forEach((field) => { if (delta[field]) state.status[field] = delta[field]; });
  if (delta.alerts) renderAlerts();
  if (delta.relays) renderRelays();
  updateTasks(delta.tasks, delta.removed);
  (delta.tasks || []).forEach((t) => { if (t.lastRun) addRun(t.unit, t.lastRun); });
  renderHeader();
  renderTasks();
}
function renderAll() { renderHeader(); renderNodes(); renderTasks(); renderAlerts(); renderRelays(); renderTimeline(); refreshClocks(); }
function applyEvent(e) {
  // Replayed after a reconnect: same seq and stamp. (A restarted monitor numbers from 1 again, with later stamps.)
  const key = e.seq + '@' + e.at;
  if (state.seen.has(key)) return;
  state.seen.add(key);
  if (state.seen.size > 5000) state.seen = new Set(Array.from(state.seen).slice(-1000));
  if (e.run) { addRun(e.unit, e.run); runsChanged(e.task); }
  if (e.type === 'owner:changed') { addOwnerChange(e); ownersChanged(e.task); }
  if (!LISTED.has(e.type)) return;
  state.events.unshift(e);
  state.events.sort((a, b) => b.at - a.at || b.seq - a.seq);
  if (state.events.length > MAX_EVENTS) state.events.length = MAX_EVENTS;
  renderEvents();
  if (e.type.startsWith('alert:') && state.status) renderDetailAlerts(state.status.alerts, state.events);
}
function showData(visible) { $('main').hidden = !visible; $('auth').hidden = visible; }
function showUnauthorized(detail) {
  if (state.stream) { state.stream.close(); state.stream = null; }
  state.status = null;
  state.runs.clear();
  state.owners.clear();
  state.events = [];
  setTasks([]);
  ['nodes', 'tasks', 'alerts', 'events', 'timeline', 'relays', 'detail-runs', 'detail-owners', 'detail-alerts'].forEach((id) => $(id).replaceChildren());
  $('auth-detail').textContent = detail ? '(' + detail + ')' : '';
  showData(false);
  setConnection('unauthorized');
}
function connect() {
  if (state.stream) state.stream.close();
  const es = new EventSource('/api/events');
  state.stream = es;
  es.onopen = () => setConnection('live');
  es.onerror = () => {
    if (es.readyState === EventSource.CLOSED) {
      // The server refused the stream (a 401 after a restart with a new token, or an error): ask /api/status why, later.
      es.close(); state.stream = null;
      setConnection('offline');
      state.retryAt = frameNow() + RETRY_MS;
    } else setConnection('reconnecting'); // EventSource retries by itself
  };
  es.addEventListener('status', (m) => applyStatus(JSON.parse(m.data)));
  es.addEventListener('status:delta', (m) => applyDelta(JSON.parse(m.data)));
  EVENT_TYPES.forEach((type) => es.addEventListener(type, (m) => applyEvent(JSON.parse(m.data))));
}
// The timeline's runs of the last minutes for the strips shown, each unit read once (300 runs: five
// minutes of a one-second task); the stream adds the new ones.
function seedTimeline(units) {
  const todo = units.filter((u) => !state.seeded.has(u));
  todo.forEach((u) => state.seeded.add(u));
  if (todo.length === 0) return;
  Promise.all(todo.map((u) => getJson('/api/runs?limit=300&unit=' + encodeURIComponent(u)).then((res) => {
    if (res.status === 200 && Array.isArray(res.body.runs)) res.body.runs.forEach((run) => addRun(u, run));
    else state.seeded.delete(u);
  }).catch(() => { state.seeded.delete(u); }))).then(() => { if (state.status) renderTimeline(); });
}
// The events and owner changes the monitor still holds, so a reload loses neither (applyEvent drops repeats).
function loadHistory() {
  return Promise.all([
    getJson('/api/events/recent?limit=' + MAX_EVENTS).then((res) => { if (res.status === 200 && Array.isArray(res.body.events)) res.body.events.forEach(applyEvent); }),
    getJson('/api/owners?limit=1000').then((res) => { if (res.status === 200 && Array.isArray(res.body.changes)) res.body.changes.forEach(addOwnerChange); }),
  ]).catch(() => { /* the stream brings the next ones */ });
}
// Write actions take the token in a header (never the cookie, which other sites' requests would carry):
// the operator types it once; it stays in this page's memory only.
function act(action, task) {
  const token = $('action-token').value.trim();
  const out = $('action-result');
  if (!token) { out.textContent = 'Enter the monitor token to ' + action + ' ' + task + '.'; return; }
  out.textContent = action + ' ' + task + '…';
  fetch('/api/tasks/' + encodeURIComponent(task) + '/' + action, { method: 'POST', credentials: 'omit', cache: 'no-store', headers: { authorization: 'Bearer ' + token } })
    .then((res) => res.json().catch(() => ({})).then((body) => ({ status: res.status, body })))
    .then((r) => {
      out.textContent = r.status === 200 ? action + ' ' + task + ': done' + (r.body.trigger ? ' (trigger ' + r.body.trigger + ')' : '') : action + ' ' + task + ' refused: ' + (r.body.error || 'HTTP ' + r.status);
    })
    .catch((error) => { out.textContent = action + ' ' + task + ' failed: ' + error.message; });
}
function start() {
  return getJson('/api/status').then((r) => {
    if (r.status === 401) return showUnauthorized(r.body && r.body.error);
    // Otherwise (a 503 before the monitor's first snapshot, say) the stream brings the status when there is one.
    if (r.status === 200) applyStatus(r.body);
    return loadHistory().then(() => r);
  }).then((r) => {
    if (!r) return;
    connect();
    if (state.status) renderTimeline();
    followRoute(state.status ? state.status.alerts : [], state.events);
  }).catch(() => {
    setConnection('offline');
    state.retryAt = frameNow() + RETRY_MS;
  });
}

// One loop on animation frames: once a second (of frame time) refresh the clocks and the timeline,
// and retry a stream the server closed.
function tick(frame) {
  const second = Math.floor(frame / 1000);
  if (second !== state.lastSecond) {
    state.lastSecond = second;
    if (state.status) { $('store-time').textContent = clock(storeNow()) + ' UTC'; refreshClocks(); prune(storeNow()); renderTimeline(); }
  }
  if (state.retryAt && frame >= state.retryAt) { state.retryAt = 0; start(); }
  requestAnimationFrame(tick);
}

function init() {
  const legend = $('legend');
  OUTCOMES.forEach((o) => legend.appendChild(pill(o, 's-' + o)));
  legend.appendChild(pill('failover', 'k-failover', 'the owner died or left; the mark is where the new owner took over'));
  legend.appendChild(pill('handover', 'k-handover', 'another live node took over'));
  // The sign-in token is in the cookie now: keep it out of the address bar, history and screenshots.
  const url = new URL(location.href);
  if (url.searchParams.has('token')) { url.searchParams.delete('token'); history.replaceState(null, '', url.pathname + url.search + url.hash); }
  $('tasks').addEventListener('click', (e) => {
    const button = e.target.closest ? e.target.closest('button[data-action]') : null;
    if (button) act(button.getAttribute('data-action'), button.getAttribute('data-act-task'));
  });
  wireTaskControls(() => { if (state.status) renderTimeline(); });
  wireDetail();
  window.addEventListener('hashchange', () => followRoute(state.status ? state.status.alerts : [], state.events));
  requestAnimationFrame(tick);
  start();
}
init();
