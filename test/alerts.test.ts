import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHerald, type Herald } from './helpers/herald.js';
import { scrape } from './helpers/metrics.js';

const deploy = (path: string) => fileURLToPath(new URL(`../deploy/${path}`, import.meta.url));
const RULES = deploy('prometheus/alerts.yml');
const DASHBOARD = deploy('grafana/herald.json');

/** Runs promtool (Debian's prometheus package, which .ci/run installs) in deploy/prometheus. */
function promtool(...args: string[]): { status: number | null; output: string } {
  const run = spawnSync('promtool', args, { cwd: deploy('prometheus'), encoding: 'utf8' });
  if (run.error) throw new Error(`promtool could not run (${run.error.message}): install Debian's prometheus package`);
  return { status: run.status, output: run.stdout + run.stderr };
}

/** Every metric a Prometheus text exposition declares, with a histogram's series names. */
function declaredMetrics(text: string): Set<string> {
  const names = new Set<string>();
  for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(name!);
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name! + suffix);
  }
  return names;
}

const usedMetrics = (text: string) => new Set(text.match(/\bherald_[a-z0-9_]+/g));

describe('alert rules and dashboard', () => {
  let herald: Herald;
  beforeAll(async () => {
    herald = await startHerald({ WORKER_METRICS_PORT: '0' });
  });
  afterAll(() => herald?.stop());

  it('are valid rules whose alerts fire (and stay quiet) as their unit tests expect', () => {
    const check = promtool('check', 'rules', 'alerts.yml');
    expect(check.output).toContain('SUCCESS: 5 rules found');
    expect(check.status).toBe(0);
    const tested = promtool('test', 'rules', 'alerts.test.yml');
    expect(tested.output).toContain('SUCCESS');
    expect(tested.status).toBe(0);
  });

  it('name only metrics that an API instance or a worker serves', async () => {
    const served = new Set([
      ...declaredMetrics(await scrape(herald.url)),
      ...declaredMetrics(await scrape(herald.workerMetricsUrl()!)),
    ]);
    const used = new Set([...usedMetrics(readFileSync(RULES, 'utf8')), ...usedMetrics(readFileSync(DASHBOARD, 'utf8'))]);
    expect(used.size).toBeGreaterThan(15);
    expect([...used].filter((name) => !served.has(name))).toEqual([]);
  });
});
