/**
 * Which node should own each task: rendezvous (highest-random-weight) hashing with bounded load. Every
 * node computes the same answer from the same membership, so no coordinator is needed; the store still
 * decides who actually holds a task — placement only says who should *try first* and when an owner should
 * hand a task over. With N nodes declaring the same T tasks, every node gets ⌊T/N⌋ or ⌈T/N⌉ of them, and
 * a node joining or leaving moves about T/N tasks, not all of them.
 */

/** 32-bit MurmurHash3 finaliser over FNV-1a: cheap, and well mixed enough for rendezvous scores. */
export function score(task: string, node: string): number {
  let h = 0x811c9dc5;
  const text = `${task}\u0000${node}`;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * @param candidates for each task, the ids of the live nodes that declare it.
 * @returns the preferred node of each task that has at least one candidate.
 */
export function assignTasks(candidates: ReadonlyMap<string, readonly string[]>): Map<string, string> {
  const nodes = new Set<string>();
  let assignable = 0;
  for (const list of candidates.values()) {
    for (const node of list) nodes.add(node);
    if (list.length > 0) assignable += 1;
  }
  // Bounded load: every node may take ⌊T/N⌋ tasks, and only T mod N of them one more. A single cap of
  // ⌈T/N⌉ for everyone would let the first nodes fill up and leave the last short (31 over 3: 11/11/9).
  const floor = Math.floor(assignable / Math.max(1, nodes.size));
  let roomAboveFloor = assignable % Math.max(1, nodes.size);
  const load = new Map<string, number>();
  const hasRoom = (node: string): boolean => {
    const current = load.get(node) ?? 0;
    return current < floor || (current === floor && roomAboveFloor > 0);
  };
  const assignment = new Map<string, string>();
  for (const task of [...candidates.keys()].sort()) {
    const ranked = [...(candidates.get(task) ?? [])].sort((a, b) => score(task, b) - score(task, a) || (a < b ? -1 : 1));
    if (ranked.length === 0) continue;
    // When no candidate has room (declarations differ between nodes), the least loaded one takes it.
    const chosen =
      ranked.find(hasRoom) ?? ranked.reduce((best, node) => ((load.get(node) ?? 0) < (load.get(best) ?? 0) ? node : best));
    const current = load.get(chosen) ?? 0;
    if (current === floor && roomAboveFloor > 0) roomAboveFloor -= 1;
    assignment.set(task, chosen);
    load.set(chosen, current + 1);
  }
  return assignment;
}
