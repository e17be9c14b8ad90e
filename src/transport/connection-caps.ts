import type { IncomingMessage } from 'node:http';

/** Why a new WebSocket was turned away before it could speak graphql-ws; null when it may stay. */
export type CapRefusal = { limit: 'connections_per_instance' | 'connections_per_ip'; reason: string } | null;

export interface ConnectionCapsOptions {
  /** WebSockets this instance holds at once; 0 for no cap. */
  maxConnections: number;
  /** WebSockets this instance holds from one client address at once; 0 for no cap. */
  maxConnectionsPerIp: number;
  /** Proxies in front of Herald whose X-Forwarded-For entries are trusted (0: the socket's own address). */
  trustedProxies: number;
}

/**
 * The address a request comes from: the socket's peer, or, behind `trustedProxies` proxies that
 * each append the address they saw to X-Forwarded-For, the entry the outermost trusted proxy added.
 * Entries further left are whatever the client wrote and are never trusted.
 */
export function clientAddress(request: IncomingMessage, trustedProxies: number): string {
  const peer = request.socket.remoteAddress ?? 'unknown';
  if (trustedProxies === 0) return peer;
  const header = request.headers['x-forwarded-for'];
  const hops = (Array.isArray(header) ? header.join(',') : (header ?? ''))
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  return hops.at(-trustedProxies) ?? hops[0] ?? peer;
}

/**
 * Per-instance and per-address caps on open WebSockets, counted in this process: what one machine
 * or one misbehaving client may hold, beside the per-user cap presence counts over every instance.
 * An address's count lives only while it has sockets open, so the map holds the addresses connected now.
 */
export function createConnectionCaps(options: ConnectionCapsOptions) {
  const byAddress = new Map<string, number>();
  let open = 0;
  return {
    /** Takes a place for a new socket from `address`, or says which cap it is over (taking nothing). */
    take(address: string): CapRefusal {
      if (options.maxConnections > 0 && open >= options.maxConnections) {
        return {
          limit: 'connections_per_instance',
          reason: `Server full: at most ${options.maxConnections} connections per instance, try again`,
        };
      }
      const fromAddress = byAddress.get(address) ?? 0;
      if (options.maxConnectionsPerIp > 0 && fromAddress >= options.maxConnectionsPerIp) {
        return {
          limit: 'connections_per_ip',
          reason: `Too many connections: at most ${options.maxConnectionsPerIp} per address`,
        };
      }
      open += 1;
      byAddress.set(address, fromAddress + 1);
      return null;
    },
    /** Gives back the place a socket from `address` took. */
    release(address: string): void {
      open -= 1;
      const left = (byAddress.get(address) ?? 1) - 1;
      if (left > 0) byAddress.set(address, left);
      else byAddress.delete(address);
    },
  };
}
