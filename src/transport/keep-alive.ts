import type { WebSocket, WebSocketServer } from 'ws';

/**
 * Pings every socket of `wss` each `intervalMs`; a socket that has not answered the previous ping
 * by then is terminated and reported to `onDead`. One timer for all sockets, instead of graphql-ws's
 * one per socket, and unlike it this one says which sockets it dropped. A dead peer is gone within
 * two intervals; an answering one is never touched. Returns a function that stops it.
 */
export function startKeepAlive(wss: WebSocketServer, intervalMs: number, onDead: () => void): () => void {
  const answered = new WeakSet<WebSocket>();
  const onConnection = (socket: WebSocket) => {
    answered.add(socket);
    socket.on('pong', () => answered.add(socket));
  };
  wss.on('connection', onConnection);
  const timer = setInterval(() => {
    for (const socket of wss.clients) {
      if (socket.readyState !== socket.OPEN) continue;
      if (!answered.has(socket)) {
        socket.terminate();
        onDead();
        continue;
      }
      answered.delete(socket);
      socket.ping();
    }
  }, intervalMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    wss.off('connection', onConnection);
  };
}
