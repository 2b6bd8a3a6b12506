/**
 * A binary min-heap under `less`: the join's deadlines and the line simulator's emissions.
 * The order of equal items is whatever the heap makes of them, so `less` must break every
 * tie (a sample id, a sequence number) where the order has to be deterministic.
 */
export class MinHeap<T extends object> {
  private readonly items: T[] = [];

  constructor(private readonly less: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  push(item: T): void {
    const items = this.items;
    let i = items.length;
    items.push(item);
    while (i > 0) {
      const parentAt = (i - 1) >> 1;
      const parent = items[parentAt];
      if (parent === undefined || !this.less(item, parent)) break;
      items[i] = parent;
      i = parentAt;
    }
    items[i] = item;
  }

  pop(): T | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length === 0 || last === undefined) return top;
    // sift the last item down from the root
    let i = 0;
    for (;;) {
      let m = i;
      let least = last;
      const left = items[2 * i + 1];
      const right = items[2 * i + 2];
      if (left !== undefined && this.less(left, least)) {
        m = 2 * i + 1;
        least = left;
      }
      if (right !== undefined && this.less(right, least)) {
        m = 2 * i + 2;
        least = right;
      }
      items[i] = least;
      if (m === i) return top;
      i = m;
    }
  }
}
