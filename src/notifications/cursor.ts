import { createHash } from 'node:crypto';

/** Where a viewer is in one source: the epoch of its history and the last seq seen. */
export interface SourcePosition {
  epoch: string;
  seq: number;
}

/**
 * A position in a viewer's notification stream: the last seq seen of each source. A source it
 * does not name was seen up to 0, so a cursor names only sources with notifications.
 */
export interface NotificationCursor {
  sources: Map<string, SourcePosition>;
  /** The source of the item the cursor was taken at; the inbox continues with what is older than that item. */
  pivot: string | null;
}

const VERSION = 'n2';
/** A cursor names a source by a hash and an epoch by its start: enough to tell a viewer's sources and histories apart. */
const HASH_CHARS = 8;
const EPOCH_CHARS = 8;
const MAX_LENGTH = 8_192;

function sourceHash(source: string): string {
  return createHash('sha1').update(source).digest('base64url').slice(0, HASH_CHARS);
}

/** Whether a source's epoch is the one a cursor names (a cursor keeps only its start). */
export function sameEpoch(epoch: string, cursorEpoch: string): boolean {
  return epoch.slice(0, EPOCH_CHARS) === cursorEpoch.slice(0, EPOCH_CHARS);
}

/** Opaque to clients; base64url keeps it URL- and header-safe. */
export function encodeNotificationCursor(cursor: NotificationCursor): string {
  const parts = [...cursor.sources]
    .filter(([, position]) => position.seq > 0)
    .map(([source, { epoch, seq }]) => `${sourceHash(source)}:${epoch.slice(0, EPOCH_CHARS)}:${seq}`);
  const pivot = cursor.pivot === null ? '-' : sourceHash(cursor.pivot);
  return Buffer.from(`${VERSION};${pivot};${parts.join(',')}`).toString('base64url');
}

/**
 * Reads a cursor against the viewer's `sources`; null for anything that is not a notification
 * cursor Herald made. Sources it names that are not the viewer's (a cursor of another viewer) are
 * left out.
 */
export function decodeNotificationCursor(value: string, sources: string[]): NotificationCursor | null {
  if (value.length === 0 || value.length > MAX_LENGTH || !/^[A-Za-z0-9_-]+$/.test(value)) return null;
  const [version, pivotHash, list, ...rest] = Buffer.from(value, 'base64url').toString().split(';');
  if (version !== VERSION || pivotHash === undefined || list === undefined || rest.length > 0) return null;
  const byHash = new Map(sources.map((source) => [sourceHash(source), source]));
  const cursor: NotificationCursor = { sources: new Map(), pivot: byHash.get(pivotHash) ?? null };
  for (const part of list === '' ? [] : list.split(',')) {
    const match = /^([A-Za-z0-9_-]{8}):([a-z0-9]{1,8}):(\d{1,15})$/.exec(part);
    if (!match) return null;
    const [, hash = '', epoch = '', seq = ''] = match;
    const source = byHash.get(hash);
    if (source !== undefined) cursor.sources.set(source, { epoch, seq: Number(seq) });
  }
  return cursor;
}
