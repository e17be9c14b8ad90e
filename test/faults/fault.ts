/**
 * What every fault scenario measures, and the one function that judges it. Nothing here depends on
 * vitest, so `test/faults.test.ts` and `npm run faults` run the same scenarios.
 */

/** One row of the fault report: a client's deliveries of one stream against the stream's final history. */
export interface FaultResult {
  /** Updates the resource's final history holds (its last seq). */
  published: number;
  /** Deliveries to the client, over all of its connections. */
  received: number;
  /** Published seqs the client never received. */
  lost: number;
  /** Deliveries of a seq beyond its first. */
  duplicated: number;
  /** Deliveries whose seq is lower than the one delivered before. */
  outOfOrder: number;
  /** From injecting the fault to the first update the scenario counts as recovery (see {@link DeliveryLog.recovered}). */
  recoverMs: number;
  /**
   * Updates acknowledged to their producer before a Redis failover that the history after it does
   * not hold as they were (a lost tail); only rows that can tell which updates were acknowledged report it.
   */
  acknowledgedLost?: number;
}

/**
 * A fault, end to end: it starts what it needs, injects the fault mid-stream, stops everything it
 * started, and returns the measurements. It throws when the fault did not land as designed (e.g.
 * the job ended first), since its numbers would then prove nothing.
 */
export interface FaultScenario {
  name: string;
  run(): Promise<FaultResult>;
}

/** What one client received of one stream, in order, across reconnects; and when the fault hit and it recovered. */
export class DeliveryLog {
  readonly seqs: number[] = [];
  private faultAt: number | null = null;
  private recoveredAt: number | null = null;

  receive(seq: number): void {
    this.seqs.push(seq);
  }

  /** The fault is being injected now. */
  fault(): void {
    this.faultAt ??= performance.now();
  }

  /** The client is being served again; only the first call after {@link fault} counts. */
  recovered(): void {
    if (this.faultAt !== null) this.recoveredAt ??= performance.now();
  }

  get recoverMs(): number {
    if (this.faultAt === null) throw new Error('the fault was never injected');
    if (this.recoveredAt === null) throw new Error('the client never recovered from the fault');
    return Math.round(this.recoveredAt - this.faultAt);
  }
}

/**
 * Judges a client's deliveries against the seqs of the resource's final history, which must hold
 * every update from seq 1 (a trimmed history could hide a loss, so it is refused).
 */
export function judge(history: number[], log: DeliveryLog): FaultResult {
  const published = history.length;
  if (history.some((seq, i) => seq !== i + 1)) {
    throw new Error(
      `the final history is not seqs 1..${published}: raise HISTORY_LIMIT (first ${history[0]}, last ${history.at(-1)})`,
    );
  }
  const seen = new Set<number>();
  let duplicated = 0;
  let outOfOrder = 0;
  let previous = -Infinity;
  for (const seq of log.seqs) {
    if (seen.has(seq)) duplicated += 1;
    seen.add(seq);
    if (seq < previous) outOfOrder += 1;
    previous = seq;
  }
  const lost = history.filter((seq) => !seen.has(seq)).length;
  return { published, received: log.seqs.length, lost, duplicated, outOfOrder, recoverMs: log.recoverMs };
}
