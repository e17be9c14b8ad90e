/** How often streamed tokens are flushed into updates. */
export interface CoalescerOptions {
  /** Flush once this many tokens are waiting. */
  maxTokens: number;
  /** Flush once the oldest waiting token is this old, even if no more arrive. */
  maxDelayMs: number;
  /** Receives the joined tokens; calls never overlap and keep their order. */
  flush: (text: string, tokens: number) => Promise<void>;
}

/**
 * Batches a token stream so a fast generator does not publish one Redis update per token, and a
 * slow one still shows each token within maxDelayMs.
 */
export function createTokenCoalescer(options: CoalescerOptions) {
  let waiting: string[] = [];
  let timer: NodeJS.Timeout | null = null;
  let chain: Promise<void> = Promise.resolve();
  let failed = false;

  function flushNow(): Promise<void> {
    if (timer) clearTimeout(timer);
    timer = null;
    if (waiting.length > 0) {
      const tokens = waiting;
      waiting = [];
      chain = chain.then(() => options.flush(tokens.join(''), tokens.length));
      chain.catch(() => (failed = true));
    }
    return chain;
  }

  return {
    /**
     * Adds a token; resolves after a flush it caused, so a producer feels Redis's pace. Rejects
     * once a flush failed (one its timer made included), so a producer that ignores its signal still stops.
     */
    push(token: string): Promise<void> {
      if (failed) return chain;
      waiting.push(token);
      if (waiting.length >= options.maxTokens) return flushNow();
      timer ??= setTimeout(() => void flushNow().catch(() => undefined), options.maxDelayMs);
      return Promise.resolve();
    },
    /** Flushes what is left and waits for every flush to finish (rejects if one failed). */
    end(): Promise<void> {
      return flushNow();
    },
    /** Drops what is waiting: for an aborted stream. */
    cancel(): void {
      if (timer) clearTimeout(timer);
      timer = null;
      waiting = [];
    },
  };
}
