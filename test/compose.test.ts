import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../src/config.js';

/** What the checks read of a compose service; compose's merge keys (`<<`) are resolved by the parser. */
interface Service {
  build?: string;
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  depends_on?: Record<string, unknown> | string[];
  healthcheck?: { test: string[] };
  entrypoint?: string[];
}

const read = (path: string) => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8');
const servicesOf = (file: string) => (parse(read(file), { merge: true }) as { services: Record<string, Service> }).services;

const base = servicesOf('docker-compose.yml');
const tls = servicesOf('docker-compose.tls.yml');
const cluster = servicesOf('docker-compose.cluster.yml');
const readme = read('README.md');
const apis = ['api-1', 'api-2', 'api-3'];
const workers = ['worker-1', 'worker-2'];

/** Files scripts/make-certificates.sh writes: the only ones a compose file may expect in deploy/certs. */
const CERTIFICATE_FILES = ['ca.crt', 'server.crt', 'server.key', 'client.crt', 'client.key'];

/** A port a healthcheck's command probes on 127.0.0.1. */
const probedPort = (service: Service) => /127\.0\.0\.1:(\d+)\//.exec(service.healthcheck!.test.join(' '))?.[1];

describe('docker-compose.yml', () => {
  it('runs Redis, the three API instances and two workers the README names, behind nginx on 8080', () => {
    expect(Object.keys(base).sort()).toEqual(['nginx', 'redis', ...apis, ...workers].sort());
    expect(readme).toMatch(/three API instances and two workers/);
    expect(base.nginx!.ports).toEqual(['8080:8080']);
    expect(readme).toContain('http://localhost:8080/graphql');
    for (const name of [...apis, ...workers]) expect(base[name]!.build).toBe('.');
    for (const name of apis) expect(base[name]!.command).toEqual(['npm', 'start']);
    for (const name of workers) expect(base[name]!.command).toEqual(['npm', 'run', 'worker']);
  });

  it('points nginx at every API instance on the port it listens on, and each process at the redis service', () => {
    const upstream = read('deploy/nginx/herald-upstream.conf');
    const servers = [...upstream.matchAll(/^\s*server (\S+):(\d+)/gm)].map(([, host, port]) => `${host}:${port}`);
    expect(servers).toEqual(apis.map((name) => `${name}:${base[name]!.environment!.PORT}`));
    for (const name of apis) expect(probedPort(base[name]!)).toBe(base[name]!.environment!.PORT);
    for (const name of workers) expect(probedPort(base[name]!)).toBe(base[name]!.environment!.WORKER_METRICS_PORT);
    for (const name of [...apis, ...workers]) expect(base[name]!.environment!.REDIS_URL).toBe('redis://redis:6379');
  });

  it('mounts only files the repository has, and depends only on services it defines', () => {
    for (const [name, service] of Object.entries(base)) {
      for (const volume of service.volumes ?? []) {
        const [source] = volume.split(':');
        if (source!.startsWith('./'))
          expect(existsSync(new URL(`../${source}`, import.meta.url)), `${name}: ${source}`).toBe(true);
      }
      const needs = Array.isArray(service.depends_on) ? service.depends_on : Object.keys(service.depends_on ?? {});
      for (const other of needs) expect(Object.keys(base), `${name} depends on ${other}`).toContain(other);
    }
  });

  it('sets only configuration variables the README documents', () => {
    // Names in backticks in the first cell of a table row: `A` / `B` rows document both.
    const firstCells = [...readme.matchAll(/^\| (`[^|]*)\|/gm)].map(([, cell]) => cell!);
    const documented = new Set(firstCells.flatMap((cell) => [...cell.matchAll(/`([A-Z0-9_]+)`/g)].map(([, name]) => name)));
    for (const service of [...Object.values(base), ...Object.values(tls), ...Object.values(cluster)]) {
      if (service.image?.startsWith('redis') || service.image?.startsWith('nginx')) continue;
      for (const name of Object.keys(service.environment ?? {})) expect(documented, name).toContain(name);
    }
    // The one variable compose requires from the environment.
    expect(read('docker-compose.yml')).toContain('${JWT_SECRET:?');
  });
});

describe('docker-compose.tls.yml', () => {
  it('overrides only services of docker-compose.yml, publishing HTTPS on 8443 with nginx-tls.conf', () => {
    for (const name of Object.keys(tls)) expect(Object.keys(base)).toContain(name);
    expect(tls.nginx!.ports).toEqual(['8443:8443']);
    expect(tls.nginx!.volumes).toContain('./deploy/nginx/nginx-tls.conf:/etc/nginx/nginx.conf:ro');
    expect(read('deploy/nginx/nginx-tls.conf')).toMatch(/listen 8443 ssl http2;/);
  });

  it('moves every Herald process to rediss://redis with the certificates make-certificates.sh writes', () => {
    for (const name of [...apis, ...workers]) {
      const environment = tls[name]!.environment!;
      expect(environment.REDIS_URL).toBe('rediss://redis:6379');
      expect(tls[name]!.volumes).toContain('./deploy/certs:/certs:ro');
      for (const file of ['REDIS_TLS_CA_FILE', 'REDIS_TLS_CERT_FILE', 'REDIS_TLS_KEY_FILE'])
        expect(CERTIFICATE_FILES.map((f) => `/certs/${f}`)).toContain(environment[file]);
    }
    const redis = tls.redis!.command!;
    expect(redis.slice(redis.indexOf('--port'), redis.indexOf('--port') + 2)).toEqual(['--port', '0']);
    expect(redis.slice(redis.indexOf('--tls-port'), redis.indexOf('--tls-port') + 2)).toEqual(['--tls-port', '6379']);
    for (const path of redis.filter((arg) => arg.startsWith('/certs/'))) expect(CERTIFICATE_FILES).toContain(path.slice(7));
  });
});

describe('docker-compose.cluster.yml', () => {
  const nodes = ['redis-1', 'redis-2', 'redis-3', 'redis-4', 'redis-5', 'redis-6'];

  it('adds six cluster-enabled nodes and a one-shot cluster-init that forms three primaries with a replica each', () => {
    expect(Object.keys(cluster).filter((name) => !(name in base))).toEqual([...nodes, 'cluster-init']);
    for (const name of nodes) expect(cluster[name]!.command!.join(' ')).toContain('--cluster-enabled yes');
    const init = cluster['cluster-init']!;
    expect(Object.keys(init.depends_on!).sort()).toEqual(nodes);
    const script = init.entrypoint!.join(' ');
    for (const name of nodes) expect(script).toContain(`getent hosts ${name} `);
    expect(script).toContain('--cluster-replicas 1');
  });

  it('points every API instance and worker at the nodes, which Herald accepts as Cluster settings', () => {
    for (const name of [...apis, ...workers]) {
      const service = cluster[name]!;
      expect(Object.keys(service.depends_on!)).toEqual(['cluster-init']);
      const environment = { ...base[name]!.environment, ...service.environment, JWT_SECRET: 'x'.repeat(32) };
      const { redis } = loadConfig(environment, { role: apis.includes(name) ? 'api' : 'worker' });
      expect(redis.mode).toBe('cluster');
      if (redis.mode !== 'cluster') continue;
      for (const { host, port } of redis.nodes) {
        expect(nodes).toContain(host);
        expect(port).toBe(6379);
      }
    }
  });
});

it.runIf(hasDocker())('is accepted by docker compose config', () => {
  const root = new URL('..', import.meta.url).pathname;
  const env = { ...process.env, JWT_SECRET: 'x'.repeat(32) };
  execFileSync('docker', ['compose', '-f', 'docker-compose.yml', 'config', '-q'], { cwd: root, env });
  execFileSync('docker', ['compose', '-f', 'docker-compose.yml', '-f', 'docker-compose.tls.yml', 'config', '-q'], {
    cwd: root,
    env,
  });
});

function hasDocker(): boolean {
  try {
    execFileSync('docker', ['compose', 'version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
