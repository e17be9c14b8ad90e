import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/dev/redis-server.js';

/** Debian's nginx running the repo's nginx.conf, with the upstreams and port of this machine. */
export interface Nginx {
  url: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

export async function startNginx(upstreamPorts: number[]): Promise<Nginx> {
  const prefix = mkdtempSync(join(tmpdir(), 'herald-nginx-'));
  mkdirSync(join(prefix, 'logs'));
  const port = await freePort();
  const config = readFileSync(new URL('../../nginx.conf', import.meta.url), 'utf8')
    .replace(/^\s*server api-\d+:4000.*$/gm, '')
    .replace(
      'least_conn;',
      `least_conn;\n${upstreamPorts.map((p) => `    server 127.0.0.1:${p} max_fails=1 fail_timeout=5s;`).join('\n')}`,
    )
    .replace('listen 8080;', `listen 127.0.0.1:${port};`);
  const file = join(prefix, 'nginx.conf');
  writeFileSync(file, config);
  const child = spawn(
    'nginx',
    ['-p', prefix, '-c', file, '-g', `daemon off; pid ${join(prefix, 'nginx.pid')}; error_log stderr warn;`],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  while (
    !(await fetch(`${url}/healthz`).then(
      (r) => r.ok,
      () => false,
    ))
  ) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error('nginx did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    process: child,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGQUIT');
        await exited;
      }
      rmSync(prefix, { recursive: true, force: true });
    },
  };
}
