/** The hash slot of a key or shard channel, as Redis Cluster computes it (the package ioredis routes with). */
declare module 'cluster-key-slot' {
  export default function calculateSlot(key: string): number;
}
