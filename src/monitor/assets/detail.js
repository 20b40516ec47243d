// One task in full, opened by its link (#task=NAME): its runs (paged, by outcome, by owner), each run's
// output, its owners over time, and its alerts — each linking to the others:
//   #task=T                 the task
//   #task=T&node=HOST:PID   its runs on one owner (an owner's "runs" link)
//   #task=T&run=ID          one run's record and output (a run's link)
//   #task=T&token=TOKEN     the owner period of a fencing token highlighted (a run's token link)
import { allTasks } from './tasks.js';
import { $, el, pill, link, agoCell, clock, iso, fmtDur, hostPid, getJson, taskHref, taskOfUnit, firstLine, outputLine, refreshClocks } from './core.js';

const detail = { task: null, node: '', outcome: '', run: '', token: '', next: null, runs: [], loading: 0 };

/** The route of the address's hash; null when no task is open. */
function route() {
  const params = new URLSearchParams(location.hash.slice(1));
  const task = params.get('task');
  return task ? { task, node: params.get('node') || '', run: params.get('run') || '', token: params.get('token') || '' } : null;
}

/** Opens, changes or closes the detail as the hash says. */
export function followRoute(alerts, events) {
  const r = route();
  $('detail-section').hidden = !r;
  if (!r) { detail.task = null; return; }
  const reload = r.task !== detail.task || r.node !== detail.node;
  Object.assign(detail, r);
  $('detail-title').replaceChildren('Task ', el('span', { class: 'mono', 'data-testid': 'detail-task' }, r.task));
  $('detail-node-filter').replaceChildren(...(r.node ? ['on ' + r.node + ' ', link(taskHref(r.task), 'every owner')] : []));
  if (reload) { loadRuns(false); loadOwners(); }
  showRun();
  renderAlerts(alerts, events);
  highlightToken();
  $('detail-section').scrollIntoView({ block: 'nearest' });
}

/** Runs of the open task changed (an event of it arrived): read the first page again, at most once a second. */
let refreshTimer = 0;
export function runsChanged(task) {
  if (task !== detail.task || refreshTimer) return;
  refreshTimer = setTimeout(() => { refreshTimer = 0; if (detail.task === task) loadRuns(false); }, 1000);
}
/** An owner change of the open task arrived. */
export function ownersChanged(task) { if (task === detail.task) loadOwners(); }

export function wireDetail() {
  $('detail-outcome').addEventListener('change', (e) => { detail.outcome = e.target.value; loadRuns(false); });
  $('detail-more').addEventListener('click', () => loadRuns(true));
  $('detail-close').addEventListener('click', (e) => { e.preventDefault(); history.replaceState(null, '', location.pathname + location.search); window.dispatchEvent(new HashChangeEvent('hashchange')); });
}

function loadRuns(more) {
  const task = detail.task;
  const q = new URLSearchParams({ task, limit: '50' });
  if (detail.outcome) q.set('outcome', detail.outcome);
  if (detail.node) q.set('node', detail.node);
  if (more && detail.next) q.set('cursor', detail.next);
  const ask = ++detail.loading;
  return getJson('/api/runs?' + q).then((res) => {
    if (ask !== detail.loading || task !== detail.task) return;
    if (res.status !== 200) { $('detail-runs').replaceChildren(el('tr', null, el('td', { colspan: 9, class: 'empty' }, res.body.error || 'HTTP ' + res.status))); return; }
    detail.runs = more ? detail.runs.concat(res.body.runs) : res.body.runs;
    detail.next = res.body.next || null;
    renderRuns();
    showRun();
  }).catch(() => undefined);
}

function renderRuns() {
  const items = detail.runs.map((r) => el('tr', { 'data-run': r.id, 'data-status': r.status, class: r.id === detail.run ? 'hl' : null },
    el('td', { class: 'mono' }, link(taskHref(detail.task, '&run=' + encodeURIComponent(r.id)), r.triggerId ? 'trigger ' + r.triggerId : clock(r.tick), { 'data-link': 'run', title: r.id })),
    el('td', { class: 'mono', title: iso(r.tick) }, clock(r.tick)),
    el('td', null, pill(r.status, 's-' + r.status), r.missed ? el('span', { class: 'muted', 'data-field': 'missed' }, r.missed.count + ' × ' + r.missed.reason) : null),
    el('td', { class: 'mono' }, r.node ? link(taskHref(detail.task, '&node=' + encodeURIComponent(r.host + ':' + r.pid)), r.host + ':' + r.pid, { title: 'runs of ' + r.node + ' only' }) : '—'),
    el('td', { class: 'mono' }, r.token ? link(taskHref(detail.task, '&token=' + encodeURIComponent(r.token)), String(r.token), { title: 'this owner in the owners over time' }) : '—'),
    el('td', null, typeof r.lateMs === 'number' ? fmtDur(r.lateMs) : ''),
    el('td', null, typeof r.durationMs === 'number' ? fmtDur(r.durationMs) : ''),
    el('td', null, r.attempts !== undefined ? String(r.attempts) : ''),
    el('td', { class: 'wrap' }, r.error ? firstLine(r.error) : r.output ? outputLine(r.output) : '')));
  $('detail-runs').replaceChildren(...(items.length ? items : [el('tr', null, el('td', { colspan: 9, class: 'empty' }, 'No runs recorded.'))]));
  $('detail-more').hidden = !detail.next;
}

/** The run of #…&run=ID: its record and whole output, read by id when not on the page. */
function showRun() {
  const view = $('run-view');
  if (!detail.run) { view.hidden = true; return; }
  const known = detail.runs.find((r) => r.id === detail.run);
  const render = (r) => {
    const fields = [['id', r.id], ['tick', iso(r.tick)], ['node', r.node ? r.node + ' (' + r.host + ':' + r.pid + ')' : '—'], ['token', r.token], ['started', iso(r.startedAt)], ['ended', iso(r.endedAt)],
      ['late', typeof r.lateMs === 'number' ? fmtDur(r.lateMs) : ''], ['took', typeof r.durationMs === 'number' ? fmtDur(r.durationMs) : ''], ['attempts', r.attempts], ['trigger', r.triggerId]];
    view.replaceChildren(...[
      el('div', null, pill(r.status, 's-' + r.status), ' ', el('b', { class: 'mono' }, r.id)),
      el('div', { class: 'muted' }, fields.filter((f) => f[1] !== undefined && f[1] !== '').map((f) => f[0] + ' ' + f[1]).join(' · ')),
      r.missed ? el('div', { 'data-field': 'missed' }, r.missed.count + ' tick(s) missed from ' + iso(r.missed.from) + ': ' + r.missed.reason) : null,
      r.error ? el('pre', { 'data-field': 'error' }, r.error) : null,
      r.output ? el('div', null, 'exit ' + (r.output.signal || r.output.exitCode) + ' · stdout ' + r.output.stdoutBytes + ' bytes · stderr ' + r.output.stderrBytes + ' bytes') : null,
      r.output ? el('pre', { 'data-field': 'stdout' }, r.output.stdout) : null,
      r.output && r.output.stderr ? el('pre', { 'data-field': 'stderr' }, r.output.stderr) : null].filter(Boolean));
    view.hidden = false;
  };
  if (known) return render(known);
  getJson('/api/runs?id=' + encodeURIComponent(detail.run)).then((res) => {
    if (res.status === 200 && res.body.runs[0]) render(res.body.runs[0]);
    else { view.replaceChildren(el('span', { class: 'empty' }, res.body.error || 'HTTP ' + res.status)); view.hidden = false; }
  }).catch(() => undefined);
}

function loadOwners() {
  const task = detail.task;
  getJson('/api/owners?limit=100&task=' + encodeURIComponent(task)).then((res) => {
    if (task !== detail.task || res.status !== 200) return;
    // Who owns it now (the monitor may have started after that owner took it: then no change is listed).
    const now = allTasks().filter((t) => t.task === task).map((t) => el('tr', { 'data-owner-now': t.unit, 'data-token': t.owner ? t.owner.token : '' },
      el('td', null, 'now'), el('td', null, t.unit !== task ? el('span', { class: 'mono muted' }, t.unit) : null),
      el('td', { class: 'mono' }, t.owner ? t.owner.node + ' ' + hostPid(t.owner) + ' #' + t.owner.token : 'nobody'),
      el('td', null, t.owner ? el('span', { class: 'muted' }, 'since ', agoCell(t.owner.since)) : ''),
      el('td', null, t.owner ? link(taskHref(task, '&node=' + encodeURIComponent(hostPid(t.owner))), 'runs') : null)));
    const items = now.concat(res.body.changes.map((c) => el('tr', { 'data-owner-change': c.kind, 'data-token': c.to ? c.to.token : '' },
      el('td', { class: 'mono', title: iso(c.at) }, clock(c.at)),
      el('td', null, pill(c.kind, 'k-' + c.kind), c.unit !== task ? el('span', { class: 'mono muted' }, c.unit) : null),
      el('td', { class: 'mono', title: c.previous ? 'before: ' + c.previous.node + ' (' + hostPid(c.previous) + ')' : null }, c.to ? c.to.node + ' ' + hostPid(c.to) + ' #' + c.to.token : 'nobody'),
      el('td', { 'data-field': 'gap' }, typeof c.gapMs === 'number' ? fmtDur(c.gapMs) : ''),
      el('td', null, c.to ? link(taskHref(task, '&node=' + encodeURIComponent(hostPid(c.to))), 'runs') : null))));
    $('detail-owners').replaceChildren(...(items.length ? items : [el('tr', null, el('td', { colspan: 5, class: 'empty' }, 'No owner change seen by this monitor.'))]));
    highlightToken();
  }).catch(() => undefined);
}

function highlightToken() {
  document.querySelectorAll('#detail-owners tr[data-token]').forEach((tr) => tr.classList.toggle('hl', !!detail.token && tr.getAttribute('data-token') === detail.token));
}

/** The task's alerts: active ones, then raised and resolved in the events the page holds. */
export function renderAlerts(active, events) {
  if (!detail.task) return;
  const mine = (a) => taskOfUnit(a.subject) === detail.task;
  const items = active.filter(mine).map((a) => el('li', { 'data-alert': a.id }, pill(a.rule, 's-failed'), ' active since ', agoCell(a.since), ' · ', a.message))
    .concat(events.filter((e) => (e.type === 'alert:raised' || e.type === 'alert:resolved') && mine(e.alert))
      .map((e) => el('li', { 'data-alert-event': e.type }, el('span', { class: 'mono muted' }, clock(e.at)), ' ', pill(e.type, e.type === 'alert:raised' ? 's-failed' : 's-succeeded'), ' ', e.alert.message)));
  $('detail-alerts').replaceChildren(...(items.length ? items : [el('li', { class: 'empty' }, 'No alerts.')]));
  refreshClocks($('detail-alerts'));
}
