import { openSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AnswerGenerator } from '../../src/jobs/answer/generator.js';

/** Whether this is the first time `question` is seen in this test process, across job threads (a file marks it). */
function firstTime(question: string): boolean {
  const marker = join(tmpdir(), `herald-test-generator-${process.pid}-${Buffer.from(question).toString('hex').slice(0, 64)}`);
  try {
    closeSync(openSync(marker, 'wx'));
    return true;
  } catch {
    return false;
  }
}

/**
 * The answer generator tests load in job threads (startWorkers' `generator`), steered by the question:
 * - "… N": N tokens, some of them outside ASCII (body ranges are bytes, text is UTF-16), yielding
 *   to the event loop now and then so subscribers can join mid-answer; a question starting with
 *   "fail" throws half-way on its first attempt, so the retry starts the answer over.
 * - "drip": a token every 20 ms for ever, never looking at its signal (a model that does not stop).
 * - "spin": one token, then a loop that never returns (a model stuck in its own code).
 */
export default function testGenerator(): AnswerGenerator {
  return {
    name: 'test',
    async *generate({ question }) {
      if (question.startsWith('drip')) {
        for (let i = 0; ; i += 1) {
          yield ` d${i}`;
          await sleep(20);
        }
      }
      if (question.startsWith('spin')) {
        yield ' spinning';
        await sleep(50);
        for (;;);
      }
      const tokens = Number(/\d+/.exec(question)?.[0]);
      const failing = question.startsWith('fail') && firstTime(question);
      for (let i = 0; i < tokens; i += 1) {
        if (failing && i === tokens / 2) throw new Error('the model went away');
        if (i % 40 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
        yield i % 9 === 0 ? ` ñé${i}` : i % 31 === 0 ? ` 🚀${i}` : ` w${i}`;
      }
    },
  };
}
