import type { WebSocket, WebSocketServer } from 'ws';

/** How often a slice of the sockets is pinged: each interval is spread over slices this long. */
const SLICE_MS = 250;

/**
 * Pings every socket of `wss` once per `intervalMs`; a socket that has not answered its previous
 * ping by its next turn is terminated and reported to `onDead`. The pings are spread over the
 * interval, a slice every 250 ms, rather than sent to every socket at once: with thousands of
 * sockets, one burst of pings holds up the updates behind it for milliseconds. A dead peer is gone
 * within about two intervals; an answering one is never touched. Returns a function that stops it.
 */
export function startKeepAlive(wss: WebSocketServer, intervalMs: number, onDead: () => void): () => void {
  const answered = new WeakSet<WebSocket>();
  const onConnection = (socket: WebSocket) => {
    answered.add(socket);
    socket.on('pong', () => answered.add(socket));
  };
  wss.on('connection', onConnection);
  const sliceMs = Math.min(SLICE_MS, intervalMs);
  let next = 0;
  const timer = setInterval(() => {
    const sockets = [...wss.clients];
    const count = Math.ceil((sockets.length * sliceMs) / intervalMs);
    if (next >= sockets.length) next = 0;
    for (const socket of sockets.slice(next, next + count)) {
      if (socket.readyState !== socket.OPEN) continue;
      if (!answered.has(socket)) {
        socket.terminate();
        onDead();
        continue;
      }
      answered.delete(socket);
      socket.ping();
    }
    next += count;
  }, sliceMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    wss.off('connection', onConnection);
  };
}
