/** The element at `index` (negative counts from the end); a test that relies on it fails here, naming what was missing. */
export function nth<T>(items: readonly T[], index: number): T {
  const item = items.at(index);
  if (item === undefined) throw new Error(`expected an element at index ${index}, got ${items.length} elements`);
  return item;
}

type TupleOf<T, N extends number, Built extends T[]> = Built['length'] extends N ? Built : TupleOf<T, N, [...Built, T]>;

/** `N` of `T`: a test destructures the processes or instances it started without checking each is there. */
export type Tuple<T, N extends number> = T[] & (number extends N ? unknown : TupleOf<T, N, []>);
