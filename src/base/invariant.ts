/**
 * Values the types cannot prove present but the code's own logic does: an index inside its
 * list, the first item of a list known not to be empty, a key set in a map just before. Where
 * such a belief is wrong the code has a bug; these throw at that spot, saying what was missing,
 * where a non-null assertion would let `undefined` travel on (NaN in a sum, a TypeError far away).
 */

/**
 * Throws for an index outside its list. In a loop over typed arrays write
 * `list[i] ?? outOfRange(list, i)`: the read stays in the loop, where the engine knows the
 * array's kind (one read shared by arrays of many kinds, as in `at()`, is several times slower).
 */
export function outOfRange(list: { readonly length: number }, index: number): never {
  throw new RangeError(`index ${index} is outside a list of ${list.length}`);
}

/** Item `index` of `list`; a RangeError when it has none. For reads outside hot loops (see `outOfRange`). */
export function at<T>(list: ArrayLike<T>, index: number): T {
  const item = list[index];
  if (item === undefined) return outOfRange(list, index);
  return item;
}

/** `value`, which the code's logic says is set; an Error naming `what` where it is not. */
export function present<T>(value: T | null | undefined, what: string): T {
  if (value === undefined || value === null) throw new Error(`${what} is missing`);
  return value;
}
