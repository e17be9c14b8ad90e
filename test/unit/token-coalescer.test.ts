import { describe, expect, it } from 'vitest';
import { createTokenCoalescer } from '../../src/jobs/token-coalescer.js';

function recorder() {
  const flushes: Array<{ text: string; tokens: number; at: number }> = [];
  const started = Date.now();
  return {
    flushes,
    flush: async (text: string, tokens: number) => {
      flushes.push({ text, tokens, at: Date.now() - started });
    },
  };
}

describe('token coalescer', () => {
  it('flushes every maxTokens tokens from a fast generator, and the rest at the end', async () => {
    const { flushes, flush } = recorder();
    const coalescer = createTokenCoalescer({ maxTokens: 3, maxDelayMs: 10_000, flush });
    for (const token of ['a', ' b', ' c', ' d', ' e', ' f', ' g']) await coalescer.push(token);
    await coalescer.end();
    expect(flushes.map((f) => [f.text, f.tokens])).toEqual([
      ['a b c', 3],
      [' d e f', 3],
      [' g', 1],
    ]);
  });

  it('flushes a slow generator after maxDelayMs, without waiting for more tokens', async () => {
    const { flushes, flush } = recorder();
    const coalescer = createTokenCoalescer({ maxTokens: 100, maxDelayMs: 30, flush });
    await coalescer.push('slow');
    await new Promise((r) => setTimeout(r, 120));
    expect(flushes.map((f) => f.text)).toEqual(['slow']);
    expect(flushes[0]?.at).toBeGreaterThanOrEqual(25);
    await coalescer.push(' and');
    await coalescer.push(' steady');
    await coalescer.end();
    expect(flushes.map((f) => f.text)).toEqual(['slow', ' and steady']);
  });

  it('keeps flushes in order and never overlapping, and end() reports a failed flush', async () => {
    const order: string[] = [];
    let active = 0;
    const coalescer = createTokenCoalescer({
      maxTokens: 1,
      maxDelayMs: 5,
      flush: async (text) => {
        active += 1;
        expect(active).toBe(1);
        await new Promise((r) => setTimeout(r, 5));
        order.push(text);
        active -= 1;
        if (text === 'boom') throw new Error('redis is down');
      },
    });
    void coalescer.push('one');
    void coalescer.push('two');
    await coalescer.push('boom').catch(() => undefined);
    await expect(coalescer.end()).rejects.toThrow('redis is down');
    expect(order).toEqual(['one', 'two', 'boom']);
  });

  it('refuses tokens once a flush its timer made failed, so a generator that never stops by itself is stopped', async () => {
    const coalescer = createTokenCoalescer({
      maxTokens: 100,
      maxDelayMs: 5,
      flush: () => Promise.reject(new Error('the job timed out')),
    });
    await coalescer.push('first');
    await new Promise((r) => setTimeout(r, 50));
    await expect(coalescer.push('second')).rejects.toThrow('the job timed out');
  });
});
