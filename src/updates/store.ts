import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { defineScript, publishCommand, readScript, scriptThenWait, slotPrimary } from '../redis.js';
import { BodyPrefix, type BodyPiece, type BodyRange } from './body.js';
import { newEpoch } from './cursor.js';
import { projectStream, resourceStream, type StreamAddress } from './keys.js';
import {
  isTerminal,
  type ProjectEntry,
  type ResourceRef,
  type StreamEntry,
  type UpdateEntry,
  type UpdateInput,
} from './types.js';

/** The append script, shipped as a file so producers in other languages can load the same one. */
export const APPEND_SCRIPT = readScript(new URL('./append.lua', import.meta.url));
const READ_SCRIPT = readScript(new URL('./read.lua', import.meta.url));

/** Which part of a stream's history to read: what follows a seq (at most `limit` entries), or the newest. */
export type HistoryRange = { after: number; limit?: number } | { last: number };

/** One consistent snapshot of a stream: read in one script (read.lua), so `lastSeq` matches `entries`. */
export interface HistoryRead<E extends StreamEntry> {
  /** Null when the stream has no history at all (never written, expired or lost). */
  epoch: string | null;
  /** The last seq assigned; 0 when none. */
  lastSeq: number;
  /** The oldest seq still kept; null when none is kept. */
  firstSeq: number | null;
  /** True once the stream holds its terminal update: nothing will follow. */
  final: boolean;
  entries: E[];
  /** A resource stream's body, up to the end of the last entry read that has a body range; null for a project stream. */
  body: BodyPrefix | null;
}

export interface UpdateStoreOptions {
  keyPrefix: string;
  historyLimit: number;
  ttlSeconds: number;
  /**
   * Replicas every append call waits for (WAIT, sent right after it to the same node), so that an
   * acknowledged update survives a failover; 0 (default): none, the call alone.
   */
  appendWaitReplicas?: number;
  /** How long one WAIT takes at most before the call is re-sent (default 500 ms). */
  appendWaitTimeoutMs?: number;
  /** How long a call is re-sent before its appends fail with AppendNotReplicatedError (default 20 s). */
  appendWaitWithinMs?: number;
}

/** Reads one stream's history; the subscription merge needs nothing more from the store. */
export type HistoryReader<E extends StreamEntry> = (range: HistoryRange) => Promise<HistoryRead<E>>;

/** Thrown when a resource already has its terminal update; producers treat it as "stop". */
export class StreamEndedError extends Error {
  override name = 'StreamEndedError';
}

/**
 * Thrown when fewer than `appendWaitReplicas` replicas confirmed an append call in time: its updates
 * may be on the primary only, and a failover now could lose them.
 */
export class AppendNotReplicatedError extends Error {
  override name = 'AppendNotReplicatedError';
}

/** For `.catch()` on a terminal append: the stream having ended already is what the caller wanted. */
export function ignoreStreamEnded(error: unknown): void {
  if (!(error instanceof StreamEndedError)) throw error;
}

/** read.lua's reply: HMGET seq, epoch, final; the oldest member and score; the entries; with a body key, its prefix and length. */
type ReadReply = [
  [seq: string | null, epoch: string | null, final: string | null],
  string[],
  string[],
  bodyPrefix?: string,
  bodyBytes?: number,
];

/** append.lua's reply: the entry of a call's one update, or the list of its updates' entries (null: the stream had ended). */
type AppendReply = string | null | Array<string | null>;

/** The append script's command name on a connection (see defineScript). */
const APPEND_COMMAND = 'heraldAppend';

/** Most updates in one append.lua call: a bigger call would hold Redis up for everyone else. */
const MAX_APPEND_BATCH = 256;

/** One update waiting for its append.lua call: its keys and its 10 arguments (see append.lua). */
interface PendingAppend {
  /** On a Redis Cluster, the hash tag its keys share (so their slot); '' elsewhere. */
  tag: string;
  keys: string[];
  args: string[];
  resolve: (entry: string | null) => void;
  reject: (error: unknown) => void;
}

/**
 * What a Cluster node answers a script that used a key of a slot it does not serve (the slot map
 * changed since the call was grouped), or what ioredis reports after following redirections.
 */
const SERVED_ELSEWHERE = /non local key|CROSSSLOT|Too many Cluster redirections/;

/** `items` by `keyOf`, each group in the items' order. */
function groupBy<T>(items: T[], keyOf: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const key = keyOf(item);
    const group = groups.get(key);
    if (group) group.push(item);
    else groups.set(key, [item]);
  }
  return groups;
}

/** The part of a key in braces: keys with the same hash tag live in the same Cluster slot. */
function hashTag(key: string): string {
  const open = key.indexOf('{');
  return key.slice(open, key.indexOf('}', open) + 1);
}

/**
 * The update store: the only code that writes progress. Knows Redis and nothing of GraphQL.
 */
export function createUpdateStore(connection: Redis, options: UpdateStoreOptions) {
  const { keyPrefix, historyLimit, ttlSeconds } = options;
  const { appendWaitReplicas = 0, appendWaitTimeoutMs = 500, appendWaitWithinMs = 20_000 } = options;
  const appendScript = defineScript<AppendReply>(connection, APPEND_COMMAND, APPEND_SCRIPT);
  const readScript = defineScript<ReadReply>(connection, 'heraldRead', READ_SCRIPT);
  let queued: PendingAppend[] = [];
  let callsInFlight = 0;

  // An update appended while no call is in flight is sent at once; those appended meanwhile wait
  // for the calls in flight to answer, then go together in their order: on a Cluster, a call per
  // primary, carrying the updates of every slot it serves.
  function sendQueued(): void {
    const groups = groupBy(queued, (pending) => pending.tag && (slotPrimary(connection, pending.keys[0]!) ?? pending.tag));
    queued = [];
    for (const group of groups.values()) {
      for (let i = 0; i < group.length; i += MAX_APPEND_BATCH) send(group.slice(i, i + MAX_APPEND_BATCH));
    }
  }

  // Sends the call, then WAITs for the replicas; while too few confirm, sends the same call again
  // (same append ids: each update is stored once, and a primary that took over gets what it lacks).
  async function appendReplicated(call: [number, ...string[]]): Promise<AppendReply> {
    const giveUpAt = Date.now() + appendWaitWithinMs;
    for (;;) {
      const [reply, acknowledged] = await scriptThenWait<AppendReply>(
        connection,
        APPEND_COMMAND,
        call,
        appendWaitReplicas,
        appendWaitTimeoutMs,
      );
      if (acknowledged >= appendWaitReplicas) return reply;
      if (Date.now() >= giveUpAt) {
        throw new AppendNotReplicatedError(
          `${acknowledged} of ${appendWaitReplicas} replicas (APPEND_WAIT_REPLICAS) confirmed the append within ${appendWaitWithinMs} ms: it may be on the primary only`,
        );
      }
    }
  }

  // One append.lua call for `batch`. A Cluster routes it by its declared keys, which must share a
  // slot: those of the leading updates of the first slot; the others follow the arguments.
  async function call(batch: PendingAppend[]): Promise<Array<string | null>> {
    const firstTag = batch[0]!.tag;
    const otherSlot = batch.findIndex((pending) => pending.tag !== firstTag);
    const keys = batch.flatMap((p) => p.keys);
    const declared = otherSlot === -1 ? keys.length : batch.slice(0, otherSlot).reduce((n, p) => n + p.keys.length, 0);
    const call: [number, ...string[]] = [
      declared,
      ...keys.slice(0, declared),
      String(historyLimit),
      String(ttlSeconds),
      publishCommand(connection),
      ...batch.flatMap((p) => p.args),
      ...keys.slice(declared),
    ];
    const reply = await (appendWaitReplicas > 0 ? appendReplicated(call) : appendScript(...call));
    return Array.isArray(reply) ? reply : [reply];
  }

  function settle(batch: PendingAppend[], entries: Array<string | null>): void {
    batch.forEach((pending, i) => pending.resolve(entries[i] ?? null));
  }

  function fail(batch: PendingAppend[], error: unknown): void {
    for (const pending of batch) pending.reject(error);
  }

  async function appendAll(batch: PendingAppend[]): Promise<void> {
    try {
      settle(batch, await call(batch));
    } catch (error) {
      const slots = groupBy(batch, (pending) => pending.tag);
      if (slots.size === 1 || !SERVED_ELSEWHERE.test(String(error))) return fail(batch, error);
      // The slot map changed under the call: its primary no longer serves every slot it carried.
      // The updates it stored before finding out are known by their append ids, so each slot's
      // updates go again on their own, routed by the cluster as one-slot calls are.
      await Promise.all(
        [...slots.values()].map((group) =>
          call(group).then(
            (entries) => settle(group, entries),
            (groupError: unknown) => fail(group, groupError),
          ),
        ),
      );
    }
  }

  function send(batch: PendingAppend[]): void {
    callsInFlight += 1;
    void appendAll(batch).finally(() => {
      callsInFlight -= 1;
      if (callsInFlight === 0 && queued.length > 0) sendQueued();
    });
  }

  function appendEntry(pending: Omit<PendingAppend, 'resolve' | 'reject'>): Promise<string | null> {
    return new Promise((resolve, reject) => {
      queued.push({ ...pending, resolve, reject });
      if (callsInFlight === 0) sendQueued();
    });
  }

  /**
   * History reads asked for in one synchronous run, by stream and range: each is sent once, when
   * the run is over, and its callers share the answer. After a Redis reconnect, every open stream
   * asks for its catch-up in one loop, and all the subscribers of a resource that were at the same
   * seq ask for the same read: 20,000 of them made 20,000 identical reads. Every caller asked after
   * whatever made it read (a message, a reconnect), so the read it shares is sent after that too.
   */
  const readsThisRun = new Map<string, Promise<HistoryRead<StreamEntry>>>();

  function read<E extends StreamEntry>(address: StreamAddress, range: HistoryRange, bodyKey?: string): Promise<HistoryRead<E>> {
    const id =
      'after' in range ? `${address.history} after ${range.after} ${range.limit ?? -1}` : `${address.history} last ${range.last}`;
    let pending = readsThisRun.get(id);
    if (!pending) {
      pending = Promise.resolve().then(() => {
        readsThisRun.delete(id);
        return readNow<StreamEntry>(address, range, bodyKey);
      });
      readsThisRun.set(id, pending);
    }
    // The id names the stream, and a stream's entries are of one type.
    return pending as Promise<HistoryRead<E>>;
  }

  async function readNow<E extends StreamEntry>(
    address: StreamAddress,
    range: HistoryRange,
    bodyKey?: string,
  ): Promise<HistoryRead<E>> {
    const args =
      'after' in range ? ['after', String(range.after), String(range.limit ?? -1)] : ['last', String(Math.max(range.last, 1))];
    const keys = bodyKey ? [address.meta, address.history, bodyKey] : [address.meta, address.history];
    const [[seq, epoch, final], first, stored, bodyPrefix, bodyBytes] = await readScript(keys.length, ...keys, ...args);
    const members = 'last' in range && range.last <= 0 ? [] : stored;
    return {
      epoch,
      lastSeq: seq ? Number(seq) : 0,
      firstSeq: first.length === 2 ? Number(first[1]) : null,
      final: final === '1',
      entries: members.map((m) => JSON.parse(m) as E),
      body: bodyPrefix === undefined ? null : new BodyPrefix(bodyPrefix, bodyBytes ?? 0),
    };
  }

  return {
    /**
     * Appends one update: seq, history and publish in one Redis step. Throws StreamEndedError when
     * the resource has already ended, so nothing follows a terminal update. Updates appended while
     * an earlier append is on its way go to Redis together in one script call, each stream's in the
     * order they were appended. Each carries a fresh append id, so when ioredis re-sends a call
     * after a lost connection, every update in it is still stored once. With `appendWaitReplicas`,
     * it resolves only once that many replicas hold it (else AppendNotReplicatedError). With `body`, the piece is
     * appended to the resource's body in the same step and the entry records its range instead of
     * carrying the text. `appendId` names the logical update for a producer that retries it itself
     * (an HTTP Idempotency-Key): the same id on the same stream stores it once and answers with the
     * first entry, as long as history still holds it. `traceparent` is stored in the entry (see
     * UpdateEntry.traceparent).
     */
    async append(
      ref: ResourceRef,
      input: UpdateInput,
      body?: BodyPiece,
      appendId = randomBytes(12).toString('base64url'),
      traceparent?: string,
    ): Promise<UpdateEntry> {
      const update = { ...input, timestamp: input.timestamp ?? new Date().toISOString() };
      const resource = resourceStream(keyPrefix, ref);
      const keys: string[] = [resource.meta, resource.history, resource.appendIds];
      const args = [
        newEpoch(),
        `"kind":${JSON.stringify(ref.kind)},"id":${JSON.stringify(ref.id)}` +
          (traceparent === undefined ? '' : `,"traceparent":${JSON.stringify(traceparent)}`),
        JSON.stringify(update),
        isTerminal(update.status) ? '1' : '0',
        resource.channel,
        appendId,
      ];
      if (ref.projectId) {
        const project = projectStream(keyPrefix, ref.projectId);
        keys.push(project.meta, project.history);
        args.push(project.channel, newEpoch());
      } else {
        args.push('', '');
      }
      if (body) {
        keys.push(resource.body);
        args.push(body.append, body.restart ? '1' : '0');
      } else {
        args.push('', '');
      }
      const entry = await appendEntry({ tag: connection.isCluster ? hashTag(resource.meta) : '', keys, args });
      if (entry === null) throw new StreamEndedError(`${ref.kind} ${ref.id} has already ended`);
      return JSON.parse(entry) as UpdateEntry;
    },

    /**
     * Lets a resource that has ended take updates again (a job retried on request): its history
     * and its seq go on from where they were; only the mark that nothing follows is removed.
     */
    async reopen(ref: ResourceRef): Promise<void> {
      await connection.hdel(resourceStream(keyPrefix, ref).meta, 'final');
    },

    /**
     * A subscription holds its reader for as long as it runs, and reads only when it opens or falls
     * behind, so the reader holds the ref and names the keys on each read rather than keep them.
     */
    resourceHistory(ref: ResourceRef): HistoryReader<UpdateEntry> {
      return (range) => {
        const address = resourceStream(keyPrefix, ref);
        return read<UpdateEntry>(address, range, address.body);
      };
    },

    /** The text of one range of a resource's body, for an entry read without its body (a project stream's). */
    async readBody(ref: ResourceRef, range: BodyRange): Promise<string> {
      const [start, end] = range;
      if (end <= start) return '';
      return connection.getrange(resourceStream(keyPrefix, ref).body, start, end - 1);
    },

    /** Names the keys on each read, as resourceHistory does. */
    projectHistory(projectId: string): HistoryReader<ProjectEntry> {
      return (range) => read<ProjectEntry>(projectStream(keyPrefix, projectId), range);
    },

    resourceChannel(ref: ResourceRef): string {
      return resourceStream(keyPrefix, ref).channel;
    },

    projectChannel(projectId: string): string {
      return projectStream(keyPrefix, projectId).channel;
    },
  };
}

export type UpdateStore = ReturnType<typeof createUpdateStore>;
