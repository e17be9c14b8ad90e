import {
  FileProgressDocument,
  RecentUpdatesDocument,
  StartFileProcessingDocument,
  type FileProgressSubscription,
} from '../../src/client/generated.js';
import { makeDocument } from '../helpers/documents.js';
import { nth } from '../helpers/elements.js';
import { clientsFor, type HeraldClients } from '../helpers/herald.js';
import { collect } from '../helpers/streams.js';
import type { DeliveryLog } from './fault.js';

export type FileUpdate = FileProgressSubscription['fileProgress'];

/** Starts processing a document of `sections` sections: long enough for a fault to land mid-job. */
export async function startFile(
  api: HeraldClients,
  token: string,
  sections: number,
): Promise<{ fileId: string; cursor: string }> {
  const { body } = await api.http(token, StartFileProcessingDocument, {
    input: { name: 'fault.md', content: makeDocument(sections) },
  });
  if (!body.data) throw new Error(`startFileProcessing failed: ${JSON.stringify(body.errors)}`);
  return body.data.startFileProcessing;
}

/** More updates than any scenario makes; the API caps a read at HISTORY_LIMIT, which scenarios raise above their job's length. */
const HISTORY_READ_LIMIT = 100_000;

/** The seqs of the file's final history, oldest first. */
export async function finalHistory(api: HeraldClients, token: string, fileId: string): Promise<number[]> {
  const { body } = await api.http(token, RecentUpdatesDocument, { kind: 'FILE', id: fileId, limit: HISTORY_READ_LIMIT });
  if (!body.data) throw new Error(`recentUpdates failed: ${JSON.stringify(body.errors)}`);
  return body.data.recentUpdates.map((update) => update.seq);
}

export interface Followed {
  /** Every update received, over all connections, in the order received. */
  updates: FileUpdate[];
  /** The close code of each connection that dropped before the stream completed. */
  drops: number[];
  /** Errors the streams reported (GraphQL errors in a result, or a failed subscription). */
  errors: unknown[];
}

/**
 * Watches one file from `cursor` to its terminal update as a real client does across a fault: when
 * its connection drops first, it subscribes on the next of `urls` after the last cursor it saw, and
 * the first update there counts as recovery. `onUpdate` sees each update as it arrives, so a
 * scenario can inject its fault at a known point of the stream.
 */
export async function followFile(options: {
  urls: string[];
  token: string;
  fileId: string;
  cursor: string;
  log: DeliveryLog;
  onUpdate?: (update: FileUpdate, updates: FileUpdate[]) => void;
  timeoutMs?: number;
}): Promise<Followed> {
  const { urls, token, fileId, log, onUpdate } = options;
  const followed: Followed = { updates: [], drops: [], errors: [] };
  /** Updates each connection got before it dropped: progress, or none, when the stream does not complete. */
  const got: number[] = [];
  for (const [attempt, url] of urls.entries()) {
    const api = clientsFor(url);
    const client = api.ws(token);
    let closeCode = 0;
    client.on('closed', (event) => {
      closeCode = (event as { code: number }).code;
    });
    try {
      const run = await collect<FileUpdate>(
        client,
        FileProgressDocument,
        { fileId, after: followed.updates.at(-1)?.cursor ?? options.cursor },
        {
          field: 'fileProgress',
          timeoutMs: options.timeoutMs,
          until: (items) => {
            const update = nth(items, -1);
            if (attempt > 0 && items.length === 1) log.recovered();
            followed.updates.push(update);
            log.receive(update.seq);
            onUpdate?.(update, followed.updates);
            return false;
          },
        },
      );
      followed.errors.push(...run.errors);
      if (run.completed) return followed;
      followed.drops.push(closeCode);
      got.push(run.items.length);
    } finally {
      await api.dispose();
    }
  }
  throw new Error(
    `the stream did not complete on any of ${urls.length} connections; drops: ${followed.drops.join(', ')}; ` +
      `updates each got: ${got.join(', ')}`,
  );
}
