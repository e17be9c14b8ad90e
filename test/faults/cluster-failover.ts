import assert from 'node:assert/strict';
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
import { finalHistory, followFile, startFile } from './follow.js';

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
  /** The primary that holds `resource`'s stream and publishes its channel. */
  primaryOf: (resource: ResourceRef) => Promise<RedisServer>;
}

/** Runs `scenario` against one API instance and one worker on a Redis Cluster of three primaries with a replica each. */
async function onCluster(scenario: (cluster: OnCluster) => Promise<FaultResult>): Promise<FaultResult> {
  let redis: RedisClusterGroup | undefined;
  let herald: Cluster<1, 1> | undefined;
  try {
    redis = await startRedisCluster({ nodeTimeoutMs: NODE_TIMEOUT_MS });
    const keyPrefix = uniquePrefix();
    herald = await startCluster(
      {
        KEY_PREFIX: keyPrefix,
        CHUNK_CHARS: '100',
        PROGRESS_UPDATES: '100000',
        HISTORY_LIMIT: '10000',
        NOTIFY_RATE_LIMIT: '100000',
      },
      { apis: 1, workers: 1 },
      redis.env,
    );
    const group = redis;
    const api = clientsFor(herald.apiUrls[0]);
    try {
      return await scenario({
        redis: group,
        herald,
        api,
        keyPrefix,
        primaryOf: async (resource) => (await group.shardOf(calculateSlot(resourceStream(keyPrefix, resource).channel))).primary,
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
 * The primary that holds a running job's stream is SIGKILLed: its replica is promoted, the
 * worker's appends wait it out (REDIS_FAILOVER_WAIT_MS) and carry on there, and the job ends in its
 * first attempt. Recovery is the first update written after the primary exited. As with Sentinel, an update
 * the dead primary acknowledged but had not replicated may be lost and its seq reused: judged is
 * that the final history is seqs 1..n and the client got each once and in order.
 */
export const clusterJobPrimaryKill: FaultScenario = {
  name: "Cluster primary holding a running job's stream SIGKILLed",
  run: () =>
    onCluster(async ({ redis, api, primaryOf }) => {
      const token = await api.token('cyd');
      const { fileId, cursor } = await startFile(api, token, 400);
      const primary = await primaryOf({ kind: 'file', id: fileId, projectId: null });
      const log = new DeliveryLog();
      // Once it has exited: an update stamped later was stored by the promoted replica, not by
      // the primary in its last milliseconds.
      let goneAt = Infinity;
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
          void redis.kill(primary).then(() => (goneAt = Date.now()));
        },
      });
      assert.deepEqual(errors, [], 'the stream reported no error');
      assert.deepEqual(drops, [], 'the subscriber never had to reconnect');
      assert.equal(nth(updates, -1).event, 'processing_completed');
      assert.ok(!updates.some((u) => u.event === 'attempt_failed'), 'no attempt failed');
      const { body } = await api.http(token, JobDocument, { id: fileId });
      assert.equal(body.data?.job?.attemptsMade, 1, 'the job ended in its first attempt');
      return judge(await finalHistory(api, token, fileId), log);
    }),
};

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
