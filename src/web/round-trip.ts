/**
 * The round trip of the connection's last ping, or "–" before it has answered one: a number
 * would be made up. Below the browser's timer resolution (0.1 ms) it reads "< 0.1 ms", not "0.0 ms".
 */
export function describeRoundTrip(ms: number | null): string {
  if (ms === null) return 'round trip –';
  if (ms < 0.1) return '< 0.1 ms round trip';
  return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms round trip`;
}
