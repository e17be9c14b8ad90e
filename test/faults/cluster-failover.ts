import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import calculateSlot from 'cluster-key-slot';
import {
  JobDocument,
  NotificationInboxDocument,
  NotificationsDocument,
  SendNotificationDocument,
  type NotificationsSubscription,
} from '../../src/client/generated.js';
import { notificationKeys, targetSource } from '../../src/notifications/keys.js';
import { createPublisher } from '../../src/publisher.js';
import { encodeCursor } from '../../src/updates/cursor.js';
import { resourceStream } from '../../src/updates/keys.js';
import type { ResourceRef } from '../../src/updates/types.js';
import { nth } from '../helpers/elements.js';
import { clientsFor, type HeraldClients } from '../helpers/herald.js';
import { startCluster, type Cluster } from '../helpers/processes.js';
import { uniquePrefix } from '../helpers/redis.js';
import { startRedisCluster, type RedisClusterGroup, type RedisServer } from '../helpers/redis-server.js';
import { collect } from '../helpers/streams.js';
import { DeliveryLog, judge, type FaultResult, type FaultScenario } from './fault.js';
import { finalHistory, followFile, startFile, type FileUpdate } from './follow.js';

type Notification = NotificationsSubscription['notifications'];

/** How long a silent primary takes to be failed over: no recovery can come sooner. */
const NODE_TIMEOUT_MS = 1_000;

/** A promotion takes about 2 s alone and much longer on a loaded 2-core machine; the rest of the job follows it. */
const FOLLOW_TIMEOUT_MS = 90_000;

interface OnCluster {
  redis: RedisClusterGroup;
  herald: Cluster<1, 1>;
  api: HeraldClients;
  keyPrefix: string;
  /** The slot of `resource`'s stream and channel. */
  slotOf: (resource: ResourceRef) => number;
  /** The primary that holds `resource`'s stream and publishes its channel. */
  primaryOf: (resource: ResourceRef) => Promise<RedisServer>;
}

/** What a row changes of the common setup. */
interface ClusterSetup {
  /** Replicas of each primary (default 1). */
  replicasPerPrimary?: number;
  /** Herald settings added to the common ones. */
  settings?: Record<string, string>;
}

/** Runs `scenario` against one API instance and one worker on a Redis Cluster of three primaries with their replicas. */
async function onCluster(scenario: (cluster: OnCluster) => Promise<FaultResult>, setup: ClusterSetup = {}): Promise<FaultResult> {
  let redis: RedisClusterGroup | undefined;
  let herald: Cluster<1, 1> | undefined;
  try {
    redis = await startRedisCluster({ nodeTimeoutMs: NODE_TIMEOUT_MS, replicasPerPrimary: setup.replicasPerPrimary });
    const keyPrefix = uniquePrefix();
    herald = await startCluster(
      {
        KEY_PREFIX: keyPrefix,
        CHUNK_CHARS: '100',
        PROGRESS_UPDATES: '100000',
        HISTORY_LIMIT: '10000',
        NOTIFY_RATE_LIMIT: '100000',
        ...setup.settings,
      },
      { apis: 1, workers: 1 },
      redis.env,
    );
    const group = redis;
    const api = clientsFor(herald.apiUrls[0]);
    const slotOf = (resource: ResourceRef) => calculateSlot(resourceStream(keyPrefix, resource).channel);
    try {
      return await scenario({
        redis: group,
        herald,
        api,
        keyPrefix,
        slotOf,
        primaryOf: async (resource) => (await group.shardOf(slotOf(resource))).primary,
      });
    } finally {
      await api.dispose();
    }
  } finally {
    await herald?.stop();
    await redis?.stop();
  }
}

/**
 * The durable row's settings: every append call is confirmed by a replica (`WAIT 1 200`) or re-sent.
 * Appends stall from the kill until a replica has re-attached to the promoted primary and synced,
 * longer than a promotion alone on a loaded machine: they may keep re-sending for up to a minute.
 */
const DURABLE_SETTINGS = { APPEND_WAIT_REPLICAS: '1', APPEND_WAIT_TIMEOUT_MS: '200', REDIS_FAILOVER_WAIT_MS: '60000' };

/**
 * The primary that holds a running job's stream is SIGKILLed after 50 updates: a replica is
 * promoted, the worker's appends wait it out (REDIS_FAILOVER_WAIT_MS) and carry on there, and the
 * job ends in its first attempt. Recovery is the first update written after the primary exited.
 *
 * The updates the subscriber got from the killed primary were all acknowledged to the worker but
 * the last (it awaits each before it appends the next): `acknowledgedLost` counts those that the
 * promoted primary's history, read by the resume path, does not hold as they were. Without
 * `durable`, replication is asynchronous and it may be above 0: the update then lost gave its seq
 * to the next one, and the final history is still seqs 1..n, against which the client is judged.
 * With `durable` (APPEND_WAIT_REPLICAS=1, two replicas per primary, so the promoted one has a
 * replica again once the other re-attaches) it must be 0.
 */
function jobPrimaryKill(name: string, durable: boolean): FaultScenario {
  const setup: ClusterSetup = durable ? { replicasPerPrimary: 2, settings: DURABLE_SETTINGS } : {};
  return {
    name,
    run: () =>
      onCluster(async ({ redis, api, slotOf }) => {
        const token = await api.token('cyd');
        const { fileId, cursor } = await startFile(api, token, 400);
        const slot = slotOf({ kind: 'file', id: fileId, projectId: null });
        const { primary, replicas } = await redis.shardOf(slot);
        const log = new DeliveryLog();
        // Once it has exited: an update stamped later was stored by the promoted replica, not by
        // the primary in its last milliseconds.
        let goneAt = Infinity;
        let fromKilled: FileUpdate[] = [];
        let failedOver: Promise<unknown> = Promise.resolve();
        const { updates, errors, drops } = await followFile({
          urls: [api.url],
          token,
          fileId,
          cursor,
          log,
          timeoutMs: FOLLOW_TIMEOUT_MS,
          onUpdate: (update, received) => {
            if (Date.parse(update.timestamp) >= goneAt) log.recovered();
            if (received.length !== 50) return;
            log.fault();
            failedOver = redis.kill(primary).then(async () => {
              goneAt = Date.now();
              fromKilled = received.slice();
              if (!durable) return;
              const promoted = await redis.replicatedPrimary(slot, FOLLOW_TIMEOUT_MS);
              assert.ok(
                replicas.some((replica) => replica.port === promoted.port),
                'a replica of the killed primary was promoted, and has a replica in sync',
              );
            });
            // Awaited once the stream ends; a failure before then must not go unhandled meanwhile.
            failedOver.catch(() => undefined);
          },
        });
        await failedOver;
        assert.deepEqual(errors, [], 'the stream reported no error');
        assert.deepEqual(drops, [], 'the subscriber never had to reconnect');
        assert.equal(nth(updates, -1).event, 'processing_completed');
        const failures = updates.filter((u) => u.event === 'attempt_failed').map((u) => u.message);
        assert.deepEqual(failures, [], 'no attempt failed');
        const { body } = await api.http(token, JobDocument, { id: fileId });
        assert.equal(body.data?.job?.attemptsMade, 1, 'the job ended in its first attempt');
        const stored = new Map(
          (await followFile({ urls: [api.url], token, fileId, cursor, log: new DeliveryLog() })).updates.map((u) => [u.seq, u]),
        );
        const acknowledgedLost = fromKilled.slice(0, -1).filter((u) => !isDeepStrictEqual(stored.get(u.seq), u)).length;
        if (durable) assert.equal(acknowledgedLost, 0, 'the promoted primary holds every update acknowledged before the kill');
        return { ...judge(await finalHistory(api, token, fileId), log), acknowledgedLost };
      }, setup),
  };
}

export const clusterJobPrimaryKill = jobPrimaryKill("Cluster primary holding a running job's stream SIGKILLed", false);

export const clusterDurableJobPrimaryKill = jobPrimaryKill(
  "Cluster primary holding a running job's stream SIGKILLed, APPEND_WAIT_REPLICAS=1, two replicas per primary",
  true,
);

/**
 * The primary that carries a stream's channel (the API's shard subscriber for it is connected
 * there) is SIGKILLed while a subscriber waits, and the terminal update is appended right after,
 * through the promoted replica. The subscriber gets it on the connection it has: the API
 * resubscribes on the new primary and resyncs the stream from history. Recovery is the terminal
 * update's arrival.
 */
export const clusterSubscriberNodeKill: FaultScenario = {
  name: "Cluster node holding the API's subscription SIGKILLed before the terminal update",
  run: () =>
    onCluster(async ({ redis, api, keyPrefix, primaryOf }) => {
      const token = await api.token('cyd');
      const producer = createPublisher({ env: { ...redis.env, KEY_PREFIX: keyPrefix } });
      try {
        const file = await producer.register({ kind: 'file', ownerId: 'cyd' });
        const first = await producer.append(file, { event: 'queued', status: 'QUEUED' });
        const primary = await primaryOf(file);
        const log = new DeliveryLog();
        let finished: Promise<unknown> = Promise.resolve();
        const { updates, errors, drops } = await followFile({
          urls: [api.url],
          token,
          fileId: file.id,
          // From before the first update: it arrives once the subscription is live.
          cursor: encodeCursor({ epoch: first.epoch, seq: 0 }),
          log,
          timeoutMs: FOLLOW_TIMEOUT_MS,
          onUpdate: (update, received) => {
            if (received.length > 1) log.recovered();
            if (update.seq !== 1) return;
            log.fault();
            finished = redis
              .kill(primary)
              .then(() => producer.append(file, { event: 'processing_completed', status: 'COMPLETED', progress: 100 }));
            // Awaited once the stream ends; a failure before then must not go unhandled meanwhile.
            finished.catch(() => undefined);
          },
        });
        await finished;
        assert.deepEqual(errors, [], 'the stream reported no error');
        assert.deepEqual(drops, [], 'the subscriber never had to reconnect');
        assert.equal(nth(updates, -1).event, 'processing_completed');
        return judge(await finalHistory(api, token, file.id), log);
      } finally {
        await producer.close();
      }
    }),
};

/** Notifications sent in the notification scenario after the first: one inbox page (100) holds them all. */
const NOTIFICATIONS = 99;

/** The number a notification of the notification scenario carries in its title, `n<number>`. */
const numberOf = (notification: { title: string }) => Number(notification.title.slice(1));

/**
 * The primary that holds a connected user's notifications is SIGKILLed while an admin sends them
 * one after another through the API: the sends wait out the promotion, and the user's open
 * subscription gets every one once and in order. Recovery is the first notification received
 * that was sent after the kill. The history judged is the user's inbox, numbered by title (n0,
 * sent first, is where the subscription starts).
 */
export const clusterNotificationPrimaryKill: FaultScenario = {
  name: "Cluster primary holding a user's notifications SIGKILLed while they are sent",
  run: () =>
    onCluster(async ({ redis, api, keyPrefix }) => {
      const [admin, token] = await Promise.all([api.token({ sub: 'ops', roles: ['admin'] }), api.token('nia')]);
      const send = async (n: number) => {
        const { body } = await api.http(admin, SendNotificationDocument, {
          input: { target: { kind: 'USER', id: 'nia' }, title: `n${n}` },
        });
        assert.deepEqual(body.errors, undefined, `notification ${n} was sent`);
        return body.data!.sendNotification.cursor;
      };
      const source = targetSource({ kind: 'USER', id: 'nia' });
      const { primary } = await redis.shardOf(calculateSlot(notificationKeys(keyPrefix).meta(source)));
      const log = new DeliveryLog();
      let firstAfterKill = Infinity;
      // The subscription starts right after n0, so it gets n1 on, whenever it goes live.
      const after = await send(0);
      const watching = collect<Notification>(
        api.ws(token),
        NotificationsDocument,
        { after },
        {
          field: 'notifications',
          timeoutMs: FOLLOW_TIMEOUT_MS,
          until: (items) => {
            const number = numberOf(nth(items, -1));
            log.receive(number);
            if (number === firstAfterKill) log.recovered();
            return number === NOTIFICATIONS;
          },
        },
      );
      for (let n = 1; n <= NOTIFICATIONS; n += 1) {
        if (n === 50) {
          log.fault();
          firstAfterKill = n;
          await redis.kill(primary);
        }
        await send(n);
      }
      const run = await watching;
      assert.deepEqual(run.errors, [], 'the subscription reported no error');
      const { body } = await api.http(token, NotificationInboxDocument, { first: NOTIFICATIONS });
      const inbox = (body.data?.notificationInbox.edges ?? []).map((edge) => numberOf(edge.node)).reverse();
      return judge(
        inbox.filter((n) => n > 0),
        log,
      );
    }),
};
