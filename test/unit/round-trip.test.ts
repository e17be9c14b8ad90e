import { describe, expect, it } from 'vitest';
import { describeRoundTrip } from '../../src/web/round-trip.js';

describe('the round trip the live page shows', () => {
  it('is a dash until measured, and never 0.0 ms', () => {
    expect(describeRoundTrip(null)).toBe('round trip –');
    expect(describeRoundTrip(0)).toBe('< 0.1 ms round trip');
    expect(describeRoundTrip(0.04)).toBe('< 0.1 ms round trip');
    expect(describeRoundTrip(0.1)).toBe('0.1 ms round trip');
    expect(describeRoundTrip(4.62)).toBe('4.6 ms round trip');
    expect(describeRoundTrip(12.5)).toBe('13 ms round trip');
  });
});
