import { ID_PATTERN } from '../ids.js';
import type { ResourceRef } from './types.js';

/**
 * The Redis keys and pub/sub channel of one stream (a resource's or a project's). The channel
 * carries the keys' hash tag, so on a Redis Cluster it is a shard channel of the keys' slot, which
 * the append script can publish to.
 */
export interface StreamAddress {
  /**
   * Hash: `seq` (last assigned), `epoch`, `final` (set once a terminal update is stored), `expires`
   * (when the keys expire, in Unix seconds, so append.lua refreshes it only when due), `ids` (the
   * append ids key has its expiry).
   */
  meta: string;
  /** Sorted set of entries scored by seq: the last `historyLimit`, and up to an eighth more between trims. */
  history: string;
  channel: string;
}

/**
 * A resource stream also remembers the append ids of the entries it keeps, to answer retries, and
 * may have a body (see append.lua).
 */
export interface ResourceStreamAddress extends StreamAddress {
  appendIds: string;
  /** String: the body its entries append to; never trimmed, it expires with the history. */
  body: string;
}

function assertId(id: string): void {
  if (!ID_PATTERN.test(id)) throw new Error(`invalid id for a Redis key: ${JSON.stringify(id)}`);
}

/** The stream of one file or query. */
export function resourceStream(prefix: string, ref: ResourceRef): ResourceStreamAddress {
  assertId(ref.id);
  const name = `${ref.kind}:${ref.id}`;
  let tagged = `{${name}}`;
  if (ref.projectId) {
    assertId(ref.projectId);
    tagged = `{project:${ref.projectId}}:${name}`;
  }
  return {
    meta: `${prefix}update_meta:${tagged}`,
    history: `${prefix}recent_updates:${tagged}`,
    appendIds: `${prefix}update_ids:${tagged}`,
    body: `${prefix}update_body:${tagged}`,
    channel: `${prefix}updates:${tagged}`,
  };
}

/** The merged stream of every file and query started in a project. */
export function projectStream(prefix: string, projectId: string): StreamAddress {
  assertId(projectId);
  const tagged = `{project:${projectId}}`;
  return {
    meta: `${prefix}update_meta:${tagged}`,
    history: `${prefix}recent_updates:${tagged}`,
    channel: `${prefix}updates:${tagged}`,
  };
}
