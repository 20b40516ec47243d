// The tasks table, built for 1,000 tasks and more: a row is built only when its task changed (the stream
// sends changed rows, status-delta.ts), and filter, search, sort and grouping only hide and reorder rows.
import { $, el, pill, link, agoCell, iso, hostPid, runSummary, taskHref } from './core.js';

const rows = new Map(); // unit -> { task: TaskStatus, tr }
const view = { text: '', state: '', group: '', label: '', sort: 'unit', dir: 1 };
let nodesById = new Map();
let order = '';
let dirty = true;

/** The whole list (the stream's first status). */
export function setTasks(tasks) {
  rows.clear();
  tasks.forEach((t) => rows.set(t.unit, { task: t, tr: row(t) }));
  dirty = true;
}
/** Changed rows and removed units (a status delta). */
export function updateTasks(changed, removed) {
  (changed || []).forEach((t) => rows.set(t.unit, { task: t, tr: row(t) }));
  (removed || []).forEach((unit) => rows.delete(unit));
  if ((changed && changed.length) || (removed && removed.length)) dirty = true;
}
/** Labels of owners, for grouping by a label. */
export function setNodes(nodes) { nodesById = new Map(nodes.map((n) => [n.id, n])); if (view.group) dirty = true; }
export function allTasks() { return Array.from(rows.values(), (r) => r.task); }
/** The units shown now (filtered), in their order. */
export function shownUnits() { return visible().map((r) => r.task.unit); }

function row(t) {
  const o = t.owner;
  const badges = el('td', null,
    t.paused && pill('paused', 'b-paused', 'paused cluster-wide'),
    t.conflict && pill('conflict', 'b-conflict', 'live nodes declare this task with different options'),
    !o && pill('no owner', 'b-noowner'));
  return el('tr', { 'data-task': t.unit, class: o ? null : 'orphan' },
    el('td', { class: 'mono', title: t.task !== t.unit ? 'task ' + t.task : null }, link(taskHref(t.task), t.unit, { 'data-link': 'task' })),
    el('td', null, t.mode),
    el('td', { class: 'wrap', title: t.declaredBy + ' declaring node(s)' }, t.schedules.join(' | ') || '—'),
    el('td', { class: 'mono', 'data-field': 'owner', 'data-owner-node': o ? o.node : null, title: o ? 'node ' + o.node + ', since ' + iso(o.since) : 'no owner' }, o ? hostPid(o) : '—'),
    el('td', { class: 'mono', 'data-field': 'owner-node' }, o ? o.node : '—'),
    el('td', { class: 'mono' }, o ? o.token : '—'),
    t.lastRun ? el('td', { class: 'wrap' }, ...runSummary(t.lastRun)) : el('td', { class: 'muted' }, 'never'),
    // Nobody runs the next tick of a task without an owner (or a paused one): no countdown then.
    el('td', null, typeof t.nextTick === 'number' && o && !t.paused ? agoCell(t.nextTick) : el('span', { class: 'muted', title: o ? 'paused' : 'no owner to run it' }, '—')),
    badges,
    el('td', null,
      el('button', { class: 'act', type: 'button', 'data-action': 'trigger', 'data-act-task': t.task, title: 'run ' + t.task + ' once now on its owner' }, 'trigger'),
      el('button', { class: 'act', type: 'button', 'data-action': t.paused ? 'resume' : 'pause', 'data-act-task': t.task, title: (t.paused ? 'resume ' : 'pause ') + t.task + ' cluster-wide' }, t.paused ? 'resume' : 'pause')));
}

function ownerLabel(t, key) {
  const node = t.owner ? nodesById.get(t.owner.node) : undefined;
  return node && node.labels && node.labels[key] !== undefined ? key + '=' + node.labels[key] : key + ' unset';
}
function groupOf(t) {
  if (view.group === 'mode') return t.mode;
  if (view.group === 'owner') return t.owner ? t.owner.node : 'no owner';
  if (view.group === 'label') return view.label ? ownerLabel(t, view.label) : 'no label key given';
  return '';
}
function matches(t) {
  if (view.state === 'failing' && !(t.lastRun && ['failed', 'timed-out', 'aborted'].includes(t.lastRun.status))) return false;
  if (view.state === 'noowner' && t.owner) return false;
  if (view.state === 'paused' && !t.paused) return false;
  if (view.state === 'running' && !(t.lastRun && t.lastRun.status === 'running')) return false;
  if (!view.text) return true;
  const node = t.owner ? nodesById.get(t.owner.node) : undefined;
  const hay = [t.unit, t.mode, t.schedules.join(' '), t.owner ? t.owner.node + ' ' + hostPid(t.owner) : 'no owner',
    node ? Object.entries(node.labels || {}).map(([k, v]) => k + '=' + v).join(' ') : '', t.lastRun ? t.lastRun.status : '', t.paused ? 'paused' : ''].join(' ').toLowerCase();
  return view.text.split(/\s+/).every((word) => hay.includes(word));
}
const SORT_KEYS = {
  unit: (t) => t.unit,
  mode: (t) => t.mode,
  owner: (t) => (t.owner ? t.owner.node : '~'),
  lastRun: (t) => (t.lastRun ? t.lastRun.startedAt || t.lastRun.tick : 0),
  nextTick: (t) => (typeof t.nextTick === 'number' ? t.nextTick : Infinity),
};
function compare(a, b) {
  const key = SORT_KEYS[view.sort];
  const x = key(a.task), y = key(b.task);
  return (x < y ? -1 : x > y ? 1 : a.task.unit < b.task.unit ? -1 : 1) * view.dir;
}
function visible() {
  const list = Array.from(rows.values()).filter((r) => matches(r.task)).sort(compare);
  if (!view.group) return list;
  // Groups in name order, rows in the chosen order within each.
  return list.map((r) => [groupOf(r.task), r]).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map((p) => Object.assign(p[1], { group: p[0] }));
}

/** Applies changes and the view to the table; cheap when nothing changed. */
export function renderTasks() {
  if (!dirty) return;
  dirty = false;
  const tbody = $('tasks');
  const list = visible();
  const key = list.map((r) => r.task.unit + (view.group ? '/' + r.group : '')).join('\n');
  const children = [];
  let group = null;
  for (const r of list) {
    if (view.group && r.group !== group) {
      group = r.group;
      const size = list.filter((x) => x.group === group).length;
      children.push(el('tr', { class: 'group', 'data-group': group }, el('td', { colspan: 10 }, group + ' · ' + size)));
    }
    children.push(r.tr);
  }
  // Rebuilt rows are new elements: put them in even when the order is the same.
  if (key !== order || children.some((c, i) => tbody.children[i] !== c)) {
    tbody.replaceChildren(...(children.length ? children : [el('tr', null, el('td', { colspan: 10, class: 'empty' }, rows.size ? 'No task matches.' : 'No tasks declared.'))]));
    order = key;
  }
  $('task-shown').textContent = list.length === rows.size ? rows.size + ' tasks' : list.length + ' of ' + rows.size + ' tasks shown';
  $('task-count').textContent = String(rows.size);
}

/** Wires the search, filter, grouping and sort controls; `changed` runs after each change of the view. */
export function wireTaskControls(changed) {
  const apply = () => { dirty = true; renderTasks(); changed(); };
  $('task-filter').addEventListener('input', (e) => { view.text = e.target.value.trim().toLowerCase(); apply(); });
  $('task-state').addEventListener('change', (e) => { view.state = e.target.value; apply(); });
  $('task-group').addEventListener('change', (e) => { view.group = e.target.value; $('task-group-label').hidden = view.group !== 'label'; apply(); });
  $('task-group-label').addEventListener('input', (e) => { view.label = e.target.value.trim(); apply(); });
  $('tasks-head').addEventListener('click', (e) => {
    const button = e.target.closest('button[data-sort]');
    if (!button) return;
    const sort = button.getAttribute('data-sort');
    view.dir = view.sort === sort ? -view.dir : 1;
    view.sort = sort;
    document.querySelectorAll('button.sort').forEach((b) => b.classList.remove('asc', 'desc'));
    button.classList.add(view.dir > 0 ? 'asc' : 'desc');
    apply();
  });
}
