import { parseArgs } from 'node:util';
import type { ServerKind } from './shared.js';

export const SCENARIOS = ['S1', 'S2', 'S3', 'S4', 'S5', 'S6', 'S7', 'S8', 'S9', 'S10'] as const;
export type Scenario = (typeof SCENARIOS)[number];
/** The scenarios `--profile` can run again under node --cpu-prof. */
export type ProfiledScenario = 'S1' | 'S2' | 'S5';

/** Every size and duration of the run; the defaults are the issue's, `--quick` shrinks them. */
export interface Params {
  quick: boolean;
  scenarios: Scenario[];
  servers: ServerKind[];
  /** The scenario to run Herald through once more under node --cpu-prof, if any. */
  profile: ProfiledScenario | null;
  s1: { connections: number; rate: number; durationMs: number };
  s2: { connections: number; rate: number; durationMs: number };
  s3: { connections: number; startRate: number; maxRate: number; stepMs: number; p99LimitMs: number };
  s4: { connections: number };
  s5: { clients: number; updates: number };
  s6: { files: number; sections: number; concurrency: number };
  /**
   * Connections, each with one subscription, on one instance: a broadcast to all of them, then one
   * update to each of `resources` resources. Capped by the open-file hard limit (the run says so).
   * `perClient` connections per load-client process, `perAddress` per 127.0.0.x source address,
   * `handshakes` in flight per load client at once.
   */
  s7: { connections: number; resources: number; perClient: number; perAddress: number; handshakes: number };
  /** Plain-text documents of 0.1, 1 and 5 MB (the default MAX_CONTENT_BYTES), those up to `largestMb`. */
  s8: { largestMb: number };
  /** Streams appended to (and all watched), updates in all, appends in flight at once: per layout, one node and three primaries. */
  s10: { streams: number; updates: number; window: number };
  /** Herald's env on top of the bench's own (e.g. SUBSCRIBER_QUEUE_LIMIT). */
  heraldEnv: Record<string, string>;
  /**
   * Tracing on (`--otlp`): Herald exports to a black-hole OTLP endpoint the bench serves, and the
   * producer's updates carry a traceparent, so each delivery records a span as a traced job's would.
   */
  otlp: boolean;
}

const FULL: Omit<Params, 'quick' | 'scenarios' | 'servers' | 'profile' | 'heraldEnv' | 'otlp'> = {
  s1: { connections: 2_000, rate: 2_000, durationMs: 10_000 },
  s2: { connections: 2_000, rate: 50, durationMs: 10_000 },
  s3: { connections: 2_000, startRate: 2_000, maxRate: 100_000, stepMs: 5_000, p99LimitMs: 100 },
  s4: { connections: 5_000 },
  s5: { clients: 1_000, updates: 100 },
  s6: { files: 300, sections: 100, concurrency: 8 },
  s7: { connections: 100_000, resources: 1_000, perClient: 5_000, perAddress: 5_000, handshakes: 100 },
  s8: { largestMb: 5 },
  s10: { streams: 2_000, updates: 60_000, window: 512 },
};

const QUICK: typeof FULL = {
  s1: { connections: 100, rate: 200, durationMs: 2_000 },
  s2: { connections: 100, rate: 20, durationMs: 2_000 },
  s3: { connections: 100, startRate: 1_000, maxRate: 4_000, stepMs: 1_500, p99LimitMs: 100 },
  s4: { connections: 200 },
  s5: { clients: 50, updates: 100 },
  s6: { files: 10, sections: 30, concurrency: 4 },
  s7: { connections: 1_000, resources: 100, perClient: 500, perAddress: 500, handshakes: 100 },
  s8: { largestMb: 1 },
  s10: { streams: 100, updates: 5_000, window: 64 },
};

export const USAGE = `npm run bench -- [options]

  --quick                 tiny sizes and short runs: a sanity check in about a minute
  --scenarios S1,S3       which scenarios (default all of them)
  --servers herald,raw    which servers (default herald,raw,stock; S5, S6 and S8 to S10 are Herald's only)
  --profile               run Herald's S1 once more under node --cpu-prof and summarize it
  --profile-scenario S2   profile S2 (fan-out) or S5 (resume) instead of S1
  --set s1.rate=4000      override any size (s1..s10 fields below); repeatable
  --otlp                  tracing on: Herald exports spans to a black-hole OTLP/HTTP endpoint the
                          bench serves, and the producer's updates carry a traceparent

  s1.connections s1.rate s1.durationMs        S1 many topics
  s2.connections s2.rate s2.durationMs        S2 fan-out
  s3.connections s3.startRate s3.maxRate s3.stepMs s3.p99LimitMs   S3 saturation
  s4.connections                              S4 idle memory
  s5.clients s5.updates                       S5 resume
  s6.files s6.sections s6.concurrency         S6 end to end
  s7.connections s7.resources s7.perClient s7.perAddress s7.handshakes   S7 connections on one instance
  s8.largestMb                                S8 large documents (0.1, 1, 5 MB)
  s10.streams s10.updates s10.window          S10 one Redis node against a Cluster of three primaries

Environment: BENCH_QUICK=1, BENCH_SCENARIOS, BENCH_SERVERS work like the flags.
HERALD_<NAME>=value is passed to the Herald child as <NAME>=value.
`;

export function parseParams(argv = process.argv.slice(2), env = process.env): Params {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean' },
      scenarios: { type: 'string' },
      servers: { type: 'string' },
      profile: { type: 'boolean' },
      'profile-scenario': { type: 'string' },
      set: { type: 'string', multiple: true },
      otlp: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const quick = values.quick ?? env.BENCH_QUICK === '1';
  const sizes = structuredClone(quick ? QUICK : FULL) as unknown as Record<string, Record<string, number>>;
  for (const assignment of values.set ?? []) {
    const [, scenario = '', setting = '', value] = /^(s(?:[1-8]|10))\.(\w+)=(\d+(?:\.\d+)?)$/.exec(assignment) ?? [];
    const settings = sizes[scenario];
    if (!settings || !(setting in settings)) throw new Error(`--set ${assignment}: unknown setting\n\n${USAGE}`);
    settings[setting] = Number(value);
  }
  const scenarios = (values.scenarios ?? env.BENCH_SCENARIOS ?? SCENARIOS.join(','))
    .split(',')
    .map((s) => s.trim().toUpperCase())
    .filter(Boolean);
  for (const s of scenarios) if (!(SCENARIOS as readonly string[]).includes(s)) throw new Error(`unknown scenario ${s}`);
  const servers = (values.servers ?? env.BENCH_SERVERS ?? 'herald,raw,stock').split(',').map((s) => s.trim());
  for (const s of servers) if (!['herald', 'raw', 'stock'].includes(s)) throw new Error(`unknown server ${s}`);
  const heraldEnv = Object.fromEntries(
    Object.entries(env)
      .filter(([key, value]) => key.startsWith('HERALD_') && value !== undefined)
      .map(([key, value]) => [key.slice('HERALD_'.length), value as string]),
  );
  return {
    quick,
    scenarios: scenarios as Scenario[],
    servers: servers as ServerKind[],
    profile: values.profile ? profileScenario(values['profile-scenario']) : null,
    ...(sizes as unknown as typeof FULL),
    heraldEnv,
    otlp: values.otlp ?? false,
  };
}

function profileScenario(value: string | undefined): ProfiledScenario {
  if (value === undefined) return 'S1';
  if (value === 'S1' || value === 'S2' || value === 'S5') return value;
  throw new Error(`--profile takes S1, S2 or S5, not ${value}`);
}
