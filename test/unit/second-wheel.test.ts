import { describe, expect, it } from 'vitest';
import { createSecondWheel } from '../../src/timeouts.js';

describe('createSecondWheel', () => {
  it('hands every item to onDue once, not before its second, and never one taken off', async () => {
    const now = Math.floor(Date.now() / 1000);
    const fired: Array<{ item: string; at: number }> = [];
    let allDue: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (allDue = resolve));
    const wheel = createSecondWheel<string>((item) => {
      fired.push({ item, at: Date.now() });
      if (fired.length === 5) allDue();
    });
    const due: Record<string, number> = { past: now - 5, soon: now + 1, later: now + 2, alsoLater: now + 2 };
    for (const [item, second] of Object.entries(due)) wheel.add(item, second);
    wheel.add('dropped', now + 2);
    wheel.add('moved', now + 1);
    wheel.delete('dropped', now + 2);
    wheel.delete('moved', now + 1);
    wheel.add('moved', now + 2);
    await done;
    // "dropped" shared its second with "later": had it stayed, it would have been handed over in the same tick.
    expect(fired.map((f) => f.item).sort()).toEqual(['alsoLater', 'later', 'moved', 'past', 'soon']);
    for (const { item, at } of fired)
      if (item !== 'past' && item !== 'moved') expect(at).toBeGreaterThanOrEqual(due[item]! * 1000);
    expect(fired.find((f) => f.item === 'moved')!.at).toBeGreaterThanOrEqual((now + 2) * 1000);
  });
});
