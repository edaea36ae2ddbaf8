// A binary max-heap of (count, pair) entries for BPE training. Entries are never updated in place:
// a changed count pushes a new entry, and the trainer skips popped entries whose count is stale.

export interface PairEntry {
  count: number;
  /** left * PAIR_KEY_BASE + right */
  key: number;
}

/** Token ids stay below this, so a pair key (left * base + right) stays a small integer. */
export const PAIR_KEY_BASE = 1 << 15;

export const pairKey = (left: number, right: number): number => left * PAIR_KEY_BASE + right;
export const pairLeft = (key: number): number => Math.floor(key / PAIR_KEY_BASE);
export const pairRight = (key: number): number => key % PAIR_KEY_BASE;

export class PairHeap {
  private readonly items: PairEntry[] = [];

  /** `before(x, y)`: x is popped before y. Must be a total order for a deterministic trainer. */
  constructor(private readonly before: (x: PairEntry, y: PairEntry) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  push(entry: PairEntry): void {
    const items = this.items;
    let i = items.push(entry) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(entry, items[parent]!)) break;
      items[i] = items[parent]!;
      i = parent;
    }
    items[i] = entry;
  }

  pop(): PairEntry | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (top === undefined || last === undefined || items.length === 0) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= items.length) break;
      const right = left + 1;
      const child = right < items.length && this.before(items[right]!, items[left]!) ? right : left;
      if (!this.before(items[child]!, last)) break;
      items[i] = items[child]!;
      i = child;
    }
    items[i] = last;
    return top;
  }
}
