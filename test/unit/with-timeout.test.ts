import { describe, expect, it } from 'vitest';
import { withTimeout } from '../../src/timeouts.js';

describe('withTimeout', () => {
  it('settles as the promise does when it is in time, and with the fallback when it is not', async () => {
    await expect(withTimeout(Promise.resolve('answer'), 1_000, 'fallback')).resolves.toBe('answer');
    await expect(withTimeout(Promise.reject(new Error('refused')), 1_000, 'fallback')).rejects.toThrow('refused');
    const started = Date.now();
    await expect(withTimeout(new Promise<string>(() => {}), 50, 'fallback')).resolves.toBe('fallback');
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    // A late answer changes nothing once the fallback is given.
    let answer: (value: string) => void = () => {};
    const late = withTimeout(new Promise<string>((resolve) => (answer = resolve)), 20, 'fallback');
    await new Promise((resolve) => setTimeout(resolve, 40));
    answer('late');
    await expect(late).resolves.toBe('fallback');
  });
});
