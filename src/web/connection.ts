import type { ConnectionState, HeraldClient } from '../client/index.js';
import { find } from './dom.js';
import { describeRoundTrip } from './round-trip.js';

function describe(state: ConnectionState): string {
  switch (state.status) {
    case 'connecting':
      return 'Connecting…';
    case 'connected':
      return 'Connected';
    case 'reconnecting':
      return `Reconnecting (attempt ${state.attempt}${state.closeCode === null ? '' : `, closed with ${state.closeCode}`})…`;
    case 'closed':
      return state.code === null || state.code === 1000
        ? 'Disconnected'
        : `Disconnected (${state.code}${state.reason ? `: ${state.reason}` : ''})`;
  }
}

/**
 * The status line: the client's connection state (a live region: "Reconnecting…" is worth
 * hearing) and, beside it, the round trip of its last ping (not live: it changes every few seconds),
 * measured on the connection it describes: a new connection shows none until its first pong.
 */
export function showConnection(herald: HeraldClient): void {
  const line = find('#connection', HTMLElement);
  const state = find('#connection-state', HTMLElement);
  const latency = find('#latency', HTMLElement);
  const show = (next: ConnectionState) => {
    line.dataset.status = next.status;
    state.textContent = describe(next);
    latency.textContent = next.status === 'connected' ? describeRoundTrip(null) : '';
  };
  show(herald.state);
  herald.onState(show);
  herald.onLatency((ms) => (latency.textContent = describeRoundTrip(ms)));
}
