import { expect } from 'vitest';
import { decodeNotificationCursor } from '../../src/notifications/cursor.js';
import { parseNotificationId, type NotificationRef } from '../../src/notifications/store.js';

/** Where a notification is in its own target: its source, epoch and seq there, read from its id. */
export function placeOf(item: { id: string }): NotificationRef {
  return parseNotificationId(item.id)!;
}

/** The items of `sent` a viewer of `sources` had not received at `cursor`: those above its seq for their target. */
export function notSeenAfter<T extends { id: string }>(cursor: string, sources: string[], sent: T[]): T[] {
  const seen = decodeNotificationCursor(cursor, sources)!;
  return sent.filter((item) => {
    const { source, seq } = placeOf(item);
    return sources.includes(source) && seq > (seen.sources.get(source)?.seq ?? 0);
  });
}

/**
 * A subscription resumed `from` a cursor got every item of `sent` not seen there, once, each
 * target in seq order; and the cursor of an item it got resumes right after that item.
 */
export function expectResumed<T extends { id: string; cursor: string }>(
  from: string,
  got: T[],
  sources: string[],
  sent: T[],
): void {
  const ids = (items: T[]) => items.map((item) => item.id).sort();
  expect(ids(got)).toEqual(ids(notSeenAfter(from, sources, sent)));
  for (const source of sources) {
    const seqs = got
      .map(placeOf)
      .filter((place) => place.source === source)
      .map((place) => place.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
  }
  const k = Math.floor(got.length / 2);
  if (got[k]) expect(ids(notSeenAfter(got[k].cursor, sources, sent))).toEqual(ids(got.slice(k + 1)));
}
