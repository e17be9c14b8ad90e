import { describe, expect, it } from 'vitest';
import { decodeNotificationCursor, encodeNotificationCursor, sameEpoch } from '../../src/notifications/cursor.js';
import { encodeCursor } from '../../src/updates/cursor.js';

const sources = ['user:ann', 'role:ops', 'project:p1', 'global', 'receipts:ann'];

describe('the notifications cursor', () => {
  it('names each source with a position above 0 by a short hash, and reads back against the viewer’s sources', () => {
    const cursor = encodeNotificationCursor({
      sources: new Map([
        ['user:ann', { epoch: '0123456789abcdef', seq: 12 }],
        ['global', { epoch: 'fedcba9876543210', seq: 3 }],
        ['role:ops', { epoch: 'aaaaaaaaaaaaaaaa', seq: 0 }],
      ]),
      pivot: 'global',
    });
    const decoded = decodeNotificationCursor(cursor, sources)!;
    expect([...decoded.sources]).toEqual([
      ['user:ann', { epoch: '01234567', seq: 12 }],
      ['global', { epoch: 'fedcba98', seq: 3 }],
    ]);
    expect(decoded.pivot).toBe('global');
    expect(sameEpoch('0123456789abcdef', decoded.sources.get('user:ann')!.epoch)).toBe(true);
    expect(cursor.length).toBeLessThan(120);
  });

  it('leaves out the sources of another viewer, and refuses what it did not make, the former format included', () => {
    const cursor = encodeNotificationCursor({ sources: new Map([['user:bob', { epoch: 'abc', seq: 4 }]]), pivot: 'user:bob' });
    expect(decodeNotificationCursor(cursor, sources)).toEqual({ sources: new Map(), pivot: null });
    expect(decodeNotificationCursor(encodeCursor({ epoch: 'abc', seq: 4 }), sources)).toBeNull();
    expect(decodeNotificationCursor('not a cursor!', sources)).toBeNull();
    expect(decodeNotificationCursor(Buffer.from('n2;-;zzz').toString('base64url'), sources)).toBeNull();
  });
});
