import type { WebSocket, WebSocketServer } from 'ws';

/** About how often a slice of the sockets is pinged: each interval is spread over slices this long. */
const SLICE_MS = 250;

/**
 * Pings every socket of `wss` once per `intervalMs`; a socket that has not answered its previous
 * ping by its next turn (at least half an interval later) is terminated and reported to `onDead`. The pings are spread over the
 * interval, a slice of the sockets every 250 ms or so, rather than sent to all at once: with thousands of
 * sockets, one burst of pings holds up the updates behind it for milliseconds. A dead peer is gone
 * within about two intervals; an answering one is never touched. Returns a function that stops it.
 */
export function startKeepAlive(wss: WebSocketServer, intervalMs: number, onDead: () => void): () => void {
  /** When each socket was pinged, until it answers. */
  const pingedAt = new WeakMap<WebSocket, number>();
  /** One listener for every socket (ws calls it with the socket as `this`), not a closure each. */
  function answered(this: WebSocket) {
    pingedAt.delete(this);
  }
  const onConnection = (socket: WebSocket) => socket.on('pong', answered);
  wss.on('connection', onConnection);
  const slices = Math.max(1, Math.round(intervalMs / SLICE_MS));
  let turn = 0;
  const timer = setInterval(() => {
    const slice = turn % slices;
    turn += 1;
    const now = Date.now();
    let index = 0;
    for (const socket of wss.clients) {
      if (index++ % slices !== slice || socket.readyState !== socket.OPEN) continue;
      const pinged = pingedAt.get(socket);
      if (pinged === undefined) {
        pingedAt.set(socket, now);
        socket.ping();
      } else if (now - pinged >= intervalMs / 2) {
        // Closes elsewhere shift sockets between slices, so the age of the ping decides, not the turn.
        socket.terminate();
        onDead();
      }
    }
  }, intervalMs / slices);
  timer.unref();
  return () => {
    clearInterval(timer);
    wss.off('connection', onConnection);
  };
}
