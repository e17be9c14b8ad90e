/**
 * What `promise` settles with, or `fallback` once `ms` have passed without it: for a call to Redis
 * that must not hold up a probe, a shutdown or a connection while Redis is away. The timer is
 * cleared as soon as either settles and never keeps the process alive. A plain timer, not an
 * AbortSignal: each connection's admission runs this, and an AbortController costs it about 700
 * bytes that outlive a young-generation collection in a connect storm (sampled heap profile of S7).
 */
export function withTimeout<T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(resolve, ms, fallback).unref();
    void promise.then(resolve, reject).finally(() => clearTimeout(timer));
  });
}

/** Items due at whole seconds (Unix time), all on one timer; see {@link createSecondWheel}. */
export interface SecondWheel<T> {
  /** `item` is due at `second`; a second already past is due at the next tick. */
  add(item: T, second: number): void;
  /** Takes `item` off `second`, the second it was added at. */
  delete(item: T, second: number): void;
}

/**
 * One timer for any number of deadlines at a second's precision, such as token expiries (a JWT's
 * `exp` is in whole seconds): a Set per second, and a timer that ticks just after each second
 * boundary while anything is waiting. A timer per connection costs each one a Timeout, a closure
 * and its context (about 200 bytes, measured on a heap snapshot of S7) and a timer list per distinct
 * delay; here an item costs its slot in a Set. `onDue` is called once per item, at most a tick late.
 */
export function createSecondWheel<T>(onDue: (item: T) => void): SecondWheel<T> {
  const slots = new Map<number, Set<T>>();
  let timer: NodeJS.Timeout | null = null;
  /** Every second up to this one has been handed to `onDue`. */
  let done = Math.floor(Date.now() / 1000) - 1;

  const arm = () => {
    timer = slots.size === 0 ? null : setTimeout(tick, 1000 - (Date.now() % 1000) + 5);
    timer?.unref();
  };
  function tick() {
    const now = Math.floor(Date.now() / 1000);
    for (; done < now;) {
      done += 1;
      const due = slots.get(done);
      slots.delete(done);
      due?.forEach(onDue);
    }
    arm();
  }

  return {
    add(item, second) {
      const at = Math.max(second, done + 1);
      const slot = slots.get(at);
      if (slot) slot.add(item);
      else slots.set(at, new Set([item]));
      if (!timer) arm();
    },
    delete(item, second) {
      const at = Math.max(second, done + 1);
      const slot = slots.get(at);
      if (!slot?.delete(item) || slot.size > 0) return;
      slots.delete(at);
      if (slots.size === 0 && timer) {
        clearTimeout(timer);
        timer = null;
      }
    },
  };
}
