import { randomBytes } from 'node:crypto';

/** A position in one stream: the epoch of its history and the seq of the last update seen. */
export interface Cursor {
  epoch: string;
  seq: number;
}

const EPOCH = /^[a-z0-9]{1,32}$/;

/**
 * A new epoch for a history that starts (again): a cursor from a lost history then names another
 * epoch, so a subscriber resuming from it learns it missed something instead of skipping ahead.
 */
export function newEpoch(): string {
  return randomBytes(8).toString('hex');
}

/** Cursors are opaque to clients; base64url keeps them URL- and header-safe. */
export function encodeCursor(cursor: Cursor): string {
  return Buffer.from(`${cursor.epoch}:${cursor.seq}`).toString('base64url');
}

/** Returns null for anything that is not a cursor Herald made. */
export function decodeCursor(value: string): Cursor | null {
  if (value.length === 0 || value.length > 64 || !/^[A-Za-z0-9_-]+$/.test(value)) return null;
  const [epoch, seqText, ...rest] = Buffer.from(value, 'base64url').toString().split(':');
  if (rest.length > 0 || !epoch || !EPOCH.test(epoch) || !seqText || !/^\d{1,15}$/.test(seqText)) return null;
  return { epoch, seq: Number(seqText) };
}
