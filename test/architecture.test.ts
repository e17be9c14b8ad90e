import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/**
 * The layers of src/ and what each may import: the diagram in the README's architecture section.
 * A layer may always import itself. Server layers from the bottom up, then the separate clients.
 */
const LAYERS = {
  /** Settings, logging, Redis connections and helpers, ids, timeouts, the metrics registry, the contract's JSON shapes. */
  base: [],
  /** Error codes and GraphQLError helpers: shared by the GraphQL side and the clients, never by the stores. */
  errors: [],
  auth: ['base'],
  updates: ['base'],
  presence: ['base', 'updates'],
  notifications: ['base', 'updates'],
  resources: ['base', 'updates'],
  jobs: ['base', 'auth', 'updates', 'notifications', 'resources'],
  schema: ['base', 'errors', 'auth', 'updates', 'notifications', 'presence', 'resources', 'jobs'],
  /** Notifications and resources too: the HTTP publish endpoint (transport/publish.ts) writes through them. */
  transport: ['base', 'errors', 'auth', 'updates', 'presence', 'notifications', 'resources', 'schema'],
  /** herald/publisher: producers outside Herald write through the stores, with no jobs, GraphQL or server. */
  publisher: ['base', 'updates', 'notifications', 'resources'],
  /** Entry points: the API (app.ts, main.ts), workers and the dev runner. */
  entry: ['base', 'errors', 'auth', 'updates', 'presence', 'notifications', 'resources', 'jobs', 'schema', 'transport'],
  client: ['base', 'errors'],
  cli: ['base', 'errors', 'client'],
  web: ['client'],
} as const satisfies Record<string, readonly string[]>;

type Layer = keyof typeof LAYERS;

/** Imports allowed outside the layers, each for a stated reason. */
const EXCEPTIONS: Array<{ from: string; to: string; why: string }> = [
  { from: 'cli/token.ts', to: 'auth/token.ts', why: '`herald token` signs and checks a dev token offline, as the server would' },
  { from: 'cli/token.ts', to: 'dev/data.ts', why: '`herald token` signs with the secret `npm run dev` keeps' },
];

/** Packages that would pull GraphQL or BullMQ into a layer that must know nothing of them. */
const FORBIDDEN_PACKAGES: Partial<Record<Layer, RegExp>> = {
  auth: /^(graphql|graphql-.*|@pothos\/.*|bullmq)$/,
  updates: /^(graphql|graphql-.*|@pothos\/.*|bullmq)$/,
  presence: /^(graphql|graphql-.*|@pothos\/.*|bullmq)$/,
  notifications: /^(graphql|graphql-.*|@pothos\/.*|bullmq)$/,
  resources: /^(graphql|graphql-.*|@pothos\/.*|bullmq)$/,
  jobs: /^(graphql|graphql-.*|@pothos\/.*)$/,
  publisher: /^(graphql|graphql-.*|@pothos\/.*|bullmq)$/,
  client: /^(node:.*|ioredis|bullmq|@pothos\/.*|graphql-yoga)$/,
};

const BASE_FILES = new Set([
  'config.ts',
  'logger.ts',
  'redis.ts',
  'rate-limiter.ts',
  'ids.ts',
  'timeouts.ts',
  'metrics.ts',
  'summaries.ts',
  'process.ts',
  'tracing.ts',
]);
const ENTRY_FILES = new Set(['app.ts', 'main.ts', 'worker.ts', 'dev.ts']);

const src = resolve(dirname(fileURLToPath(import.meta.url)), '../src');

/** The layer of a file under src/, by its path; undefined for one the diagram does not place. */
function layerOf(file: string): Layer | undefined {
  if (file === 'errors.ts') return 'errors';
  if (file === 'publisher.ts') return 'publisher';
  if (BASE_FILES.has(file)) return 'base';
  if (ENTRY_FILES.has(file) || file.startsWith('dev/')) return 'entry';
  // The live page's server side (it bundles web/ for browsers) is served by transport/http.ts.
  if (file === 'web/page.ts') return 'transport';
  const [folder = ''] = file.split('/');
  return folder in LAYERS ? (folder as Layer) : undefined;
}

function sourceFiles(): string[] {
  return readdirSync(src, { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts'))
    .map((file) => file.split('\\').join('/'));
}

/** Every module a file imports (static, type-only, re-exported or dynamic), as TypeScript's own scanner finds them. */
function importsOf(file: string): string[] {
  return ts.preProcessFile(readFileSync(join(src, file), 'utf8'), true, true).importedFiles.map((ref) => ref.fileName);
}

/** A relative specifier as a path under src/ (`../updates/keys.js` -> `updates/keys.ts`). */
function targetOf(file: string, specifier: string): string {
  return relative(src, resolve(src, dirname(file), specifier))
    .split('\\')
    .join('/')
    .replace(/\.js$/, '.ts');
}

function violations(): string[] {
  const found: string[] = [];
  for (const file of sourceFiles()) {
    const layer = layerOf(file);
    if (!layer) {
      found.push(`${file}: in no layer; place it in test/architecture.test.ts and the README's diagram`);
      continue;
    }
    for (const specifier of importsOf(file)) {
      if (!specifier.startsWith('.')) {
        if (FORBIDDEN_PACKAGES[layer]?.test(specifier)) found.push(`${file} (${layer}) imports the package ${specifier}`);
        continue;
      }
      const target = targetOf(file, specifier);
      const targetLayer = layerOf(target);
      const allowed: readonly string[] = LAYERS[layer];
      if (targetLayer === layer || (targetLayer && allowed.includes(targetLayer))) continue;
      if (EXCEPTIONS.some((e) => e.from === file && e.to === target)) continue;
      found.push(`${file} (${layer}) imports ${target} (${targetLayer ?? 'no layer'})`);
    }
  }
  return found;
}

describe('architecture', () => {
  it('imports point only down the layers of the README diagram', () => {
    expect(violations()).toEqual([]);
  });

  it('sees imports of every form: multi-line, type-only, re-exports', () => {
    expect(importsOf('schema/notifications.ts')).toEqual(
      expect.arrayContaining(['../notifications/types.js', './history-gap.js']),
    );
    expect(importsOf('client/index.ts')).toEqual(expect.arrayContaining(['./generated.js', '../summaries.js']));
  });
});
