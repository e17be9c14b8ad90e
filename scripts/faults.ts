/**
 * `npm run faults`: runs every fault scenario one after another (so each recovery time is measured
 * undisturbed) against a redis-server of its own, prints the fault report as a markdown table, and
 * exits 1 when a scenario failed or any row lost, duplicated or reordered an update.
 * `npm run faults -- --only cluster` runs only the scenarios whose name contains that word.
 */
import { parseArgs } from 'node:util';
import { ensureRedisServer, startRedisServer } from '../src/dev/redis-server.js';
import type { FaultResult } from '../test/faults/fault.js';
import { faultScenarios } from '../test/faults/index.js';
import { provideRedisUrl } from '../test/helpers/redis.js';

type Row = { name: string; result: FaultResult } | { name: string; error: string };

function isClean(row: Row): boolean {
  return 'result' in row && row.result.lost === 0 && row.result.duplicated === 0 && row.result.outOfOrder === 0;
}

function table(rows: Row[]): string {
  const lines = [
    '| scenario | updates published | received | lost | duplicated | out of order | time to recover (ms) | acknowledged, lost by the failover |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const row of rows) {
    if ('error' in row) {
      lines.push(`| ${row.name} | failed: ${row.error.replaceAll('\n', ' ').replaceAll('|', '\\|')} | | | | | | |`);
      continue;
    }
    const { published, received, lost, duplicated, outOfOrder, recoverMs, acknowledgedLost } = row.result;
    const figures = [published, received, lost, duplicated, outOfOrder, recoverMs, acknowledgedLost];
    lines.push(`| ${row.name} | ${figures.map((n) => n?.toLocaleString('en-US') ?? '').join(' | ')} |`);
  }
  return lines.join('\n');
}

const { only } = parseArgs({ options: { only: { type: 'string' } } }).values;
const scenarios = faultScenarios.filter((scenario) => !only || scenario.name.toLowerCase().includes(only.toLowerCase()));
if (scenarios.length === 0) throw new Error(`no fault scenario's name contains "${only}"`);

ensureRedisServer();
const redis = await startRedisServer();
provideRedisUrl(redis.url);
const rows: Row[] = [];
try {
  for (const scenario of scenarios) {
    console.error(`running: ${scenario.name}`);
    try {
      rows.push({ name: scenario.name, result: await scenario.run() });
    } catch (error) {
      rows.push({ name: scenario.name, error: error instanceof Error ? error.message : String(error) });
    }
  }
} finally {
  await redis.stop();
}
console.log(table(rows));
process.exitCode = rows.every(isClean) ? 0 : 1;
