import type { HistoryGap } from '../updates/stream.js';
import { builder } from './builder.js';

const GapReasonEnum = builder.enumType('HistoryGapReason', {
  description: 'Why updates after a cursor cannot be delivered.',
  values: {
    TRIMMED: { description: 'They are older than the history kept (HISTORY_LIMIT).' },
    EPOCH_CHANGED: {
      description: 'The cursor belongs to a history Redis has since lost (flushed, or restored without AOF).',
    },
  } as const,
});

/** The in-band notice of updates that cannot be delivered, shared by progress and notification streams. */
export const HistoryGapRef = builder.objectRef<HistoryGap>('HistoryGap').implement({
  description: 'Sent in-band, before anything else, when a subscription cannot deliver every update after its cursor.',
  fields: (t) => ({
    reason: t.expose('reason', { type: GapReasonEnum }),
    resumesAfter: t.exposeInt('resumesAfter', {
      description: 'The stream goes on with the updates after this seq (in the current epoch).',
    }),
  }),
});
