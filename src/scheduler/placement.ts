/**
 * Which node should own each task: rendezvous (highest-random-weight) hashing with bounded load. Every
 * node computes the same answer from the same membership, so no coordinator is needed; the store still
 * decides who actually holds a task — placement only says who should *try first* and when an owner should
 * hand a task over. With N nodes declaring the same T tasks, every node gets ⌊T/N⌋ or ⌈T/N⌉ of them, and
 * a node joining or leaving moves about T/N tasks, not all of them.
 */

/** FNV-1a over the UTF-16 code units of `text`. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h;
}

/** MurmurHash3's 32-bit finaliser over a task's and a node's hash: the rendezvous score of the pair. */
function mix(taskHash: number, nodeHash: number): number {
  let h = taskHash ^ Math.imul(nodeHash, 0x9e3779b1);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * The rendezvous score of `task` on `node`. Made of one hash per name, so that placing T tasks over N
 * nodes hashes T + N strings, not T × N (10,000 × 100: 1 M string hashes took ≈ 3 s per membership change).
 */
export function score(task: string, node: string): number {
  return mix(fnv1a(task), fnv1a(node));
}

/**
 * @param candidates for each task, the ids of the live nodes that declare it.
 * @returns the preferred node of each task that has at least one candidate.
 */
export function assignTasks(candidates: ReadonlyMap<string, readonly string[]>): Map<string, string> {
  const nodeHashes = new Map<string, number>();
  let assignable = 0;
  for (const list of candidates.values()) {
    for (const node of list) if (!nodeHashes.has(node)) nodeHashes.set(node, fnv1a(node));
    if (list.length > 0) assignable += 1;
  }
  // Bounded load: every node may take ⌊T/N⌋ tasks, and only T mod N of them one more. A single cap of
  // ⌈T/N⌉ for everyone would let the first nodes fill up and leave the last short (31 over 3: 11/11/9).
  const floor = Math.floor(assignable / Math.max(1, nodeHashes.size));
  let roomAboveFloor = assignable % Math.max(1, nodeHashes.size);
  const load = new Map<string, number>();
  const hasRoom = (node: string): boolean => {
    const current = load.get(node) ?? 0;
    return current < floor || (current === floor && roomAboveFloor > 0);
  };
  const assignment = new Map<string, string>();
  for (const task of [...candidates.keys()].sort()) {
    const list = candidates.get(task) ?? [];
    if (list.length === 0) continue;
    const taskHash = fnv1a(task);
    // The best-scoring candidate with room; when none has room (declarations differ between nodes), the
    // least loaded one, the better score first among equals.
    let best: string | undefined;
    let bestScore = -1;
    let fallback = list[0] as string;
    let fallbackScore = -1;
    for (const node of list) {
      const s = mix(taskHash, nodeHashes.get(node) as number);
      if (hasRoom(node) && (s > bestScore || (s === bestScore && node < (best as string)))) {
        best = node;
        bestScore = s;
      }
      const load0 = load.get(node) ?? 0;
      const fallbackLoad = load.get(fallback) ?? 0;
      if (load0 < fallbackLoad || (load0 === fallbackLoad && (s > fallbackScore || (s === fallbackScore && node < fallback)))) {
        fallback = node;
        fallbackScore = s;
      }
    }
    const chosen = best ?? fallback;
    const current = load.get(chosen) ?? 0;
    if (current === floor && roomAboveFloor > 0) roomAboveFloor -= 1;
    assignment.set(task, chosen);
    load.set(chosen, current + 1);
  }
  return assignment;
}
