/**
 * A counting semaphore, first come first served: at most `size` holders at
 * once; the others wait in the order they asked. The judge holds one slot per
 * sample from decoding until the model has run it, so decoded tensors never
 * pile up ahead of the model (a sample waits as its compressed frames, a
 * third of the size, and is decoded when there is room).
 */
export class Slots {
  private held = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly size: number) {
    if (!(size >= 1)) throw new RangeError(`slots: size ${size} must be at least 1`);
  }

  /** Samples holding a slot now. */
  get inUse(): number {
    return this.held;
  }

  /** Resolves with a release function once a slot is free. */
  async acquire(): Promise<() => void> {
    if (this.held < this.size) this.held++;
    else await new Promise<void>((r) => this.waiting.push(r)); // the releaser hands its slot over
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next === undefined) this.held--;
      else next();
    };
  }
}
