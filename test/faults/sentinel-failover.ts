import assert from 'node:assert/strict';
import { nth } from '../helpers/elements.js';
import { clientsFor } from '../helpers/herald.js';
import { startCluster, type Cluster } from '../helpers/processes.js';
import { startSentinelGroup, type SentinelGroup } from '../helpers/redis-server.js';
import { DeliveryLog, judge, type FaultScenario } from './fault.js';
import { finalHistory, followFile, startFile } from './follow.js';

/** How long the sentinels wait before calling a silent primary down: no failover can finish sooner. */
const DOWN_AFTER_MS = 1_000;

/** The failover takes about 3 s alone and up to about 30 s on a loaded 2-core machine; the rest of the job follows it. */
const FOLLOW_TIMEOUT_MS = 90_000;

/**
 * The Redis primary is SIGKILLed mid-job under Sentinel (a primary, two replicas, three
 * sentinels): a replica is promoted, every connection follows it, and the job finishes on it.
 * Recovery is the first update written after the kill (the updates already on their way when it
 * hit do not count). It runs its own Redis servers, so it may run beside the others.
 *
 * Replication is asynchronous, so the few updates the dying primary acknowledged but had not yet
 * replicated can be lost, and their seqs reused on the new primary (docs/redis-ha.md). What holds
 * even then, and is judged: the history on the new primary is seqs 1..n, and the client got each
 * once and in order. That what the client was shown equals what is stored is not guaranteed, so
 * not asserted.
 */
export const sentinelFailover: FaultScenario = {
  name: 'Redis primary SIGKILLed mid-job (Sentinel failover)',
  async run() {
    let group: SentinelGroup | undefined;
    let cluster: Cluster<1, 1> | undefined;
    try {
      group = await startSentinelGroup({ downAfterMs: DOWN_AFTER_MS, failoverTimeoutMs: 3_000 });
      cluster = await startCluster(
        { CHUNK_CHARS: '100', PROGRESS_UPDATES: '100000', HISTORY_LIMIT: '10000' },
        { apis: 1, workers: 1 },
        group.env,
      );
      const api = clientsFor(cluster.apiUrls[0]);
      const token = await api.token('sol');
      const { fileId, cursor } = await startFile(api, token, 400);
      const log = new DeliveryLog();
      const { primary } = group;
      let killedAt = 0;
      const { updates, errors } = await followFile({
        urls: cluster.apiUrls,
        token,
        fileId,
        cursor,
        log,
        timeoutMs: FOLLOW_TIMEOUT_MS,
        onUpdate: (update, received) => {
          if (killedAt > 0 && Date.parse(update.timestamp) >= killedAt) log.recovered();
          if (received.length !== 50) return;
          log.fault();
          killedAt = Date.now();
          primary.process.kill('SIGKILL');
        },
      });
      assert.deepEqual(errors, [], 'the stream reported no error');
      const last = nth(updates, -1);
      assert.equal(last.event, 'processing_completed');
      assert.ok(
        group.replicas.map((replica) => replica.port).includes(await group.primaryPort()),
        'the sentinels promoted a replica',
      );
      assert.ok(
        Date.parse(last.timestamp) >= killedAt + DOWN_AFTER_MS,
        'the job went on after the failover: its end was written on the new primary',
      );
      return judge(await finalHistory(api, token, fileId), log);
    } finally {
      await cluster?.stop();
      await group?.stop();
    }
  },
};
