import type { IncomingMessage } from 'node:http';
import type { Config } from '../config.js';

/** How much of a refused body the server reads and throws away before it answers and closes. */
export type DrainLimits = Config['limits']['refusedBodyDrain'];

/**
 * Reads and discards the rest of a request body that is being refused, resolving when it has all
 * arrived or a limit is reached. Closing a socket with unread data makes the kernel send a reset,
 * and a client still sending its body then fails on write (EPIPE) without reading the answer; once
 * the body is drained, the answer and the close reach it cleanly. The limits stop a client from
 * keeping the server reading forever (as nginx's lingering_time does); past them the socket is
 * closed after the answer whatever the client is still sending.
 */
export function drainRefusedBody(req: IncomingMessage, limits: DrainLimits): Promise<void> {
  if (req.readableEnded || req.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    let bytes = 0;
    const done = () => {
      clearTimeout(timer);
      req.off('data', onData).off('end', done).off('close', done);
      resolve();
    };
    const onData = (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > limits.maxBytes) done();
    };
    const timer = setTimeout(done, limits.maxMs);
    // Whoever was reading the body (Yoga, through a pipe) has given up on it: this takes it over.
    req.unpipe();
    req.on('data', onData).once('end', done).once('close', done);
    req.resume();
  });
}
