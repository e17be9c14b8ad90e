/**
 * The floor: `ws` + ioredis, one Redis subscription per topic, and the published message forwarded
 * to every subscribed socket as it came (one Buffer, sent as a text frame). Protocol: the client
 * sends `{"subscribe":"<topic>"}`; nothing else is ever sent to the server.
 */
import { Redis } from 'ioredis';
import { WebSocketServer, type WebSocket } from 'ws';
import { baselineChannel } from '../shared.js';

const port = Number(process.env.PORT ?? 4100);
const subscriber = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const topics = new Map<string, Set<WebSocket>>();

subscriber.on('messageBuffer', (channel: Buffer, message: Buffer) => {
  const sockets = topics.get(channel.toString());
  if (!sockets) return;
  for (const socket of sockets) socket.send(message, { binary: false });
});

const wss = new WebSocketServer({ port, host: '127.0.0.1', perMessageDeflate: false, maxPayload: 64 * 1024 });
wss.on('connection', (socket) => {
  const mine = new Set<string>();
  socket.on('message', (data) => {
    let topic: unknown;
    try {
      topic = (JSON.parse((data as Buffer).toString()) as { subscribe?: unknown }).subscribe;
    } catch {
      topic = undefined;
    }
    if (typeof topic !== 'string') return socket.close(4400, 'expected {"subscribe":"<topic>"}');
    const channel = baselineChannel(topic);
    let sockets = topics.get(channel);
    if (!sockets) {
      sockets = new Set();
      topics.set(channel, sockets);
      void subscriber.subscribe(channel);
    }
    sockets.add(socket);
    mine.add(channel);
  });
  socket.on('close', () => {
    for (const channel of mine) {
      const sockets = topics.get(channel);
      sockets?.delete(socket);
      if (sockets?.size === 0) {
        topics.delete(channel);
        void subscriber.unsubscribe(channel);
      }
    }
  });
});

function stop() {
  wss.close();
  subscriber.disconnect();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
