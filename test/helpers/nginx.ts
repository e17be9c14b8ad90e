import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/dev/redis-server.js';

/** Debian's nginx running the repo's deploy/nginx configuration, with the upstreams and ports of this machine. */
export interface Nginx {
  /** http://127.0.0.1:port, or https:// with TLS. */
  url: string;
  /** With TLS: where plain HTTP is answered (with a redirect to `url`). */
  plainUrl: string | null;
  process: ChildProcess;
  stop(): Promise<void>;
}

export interface NginxOptions {
  /** Runs nginx-tls.conf with this certificate and key (PEM files) instead of nginx.conf. */
  tls?: { certFile: string; keyFile: string };
}

const deployed = (name: string) => readFileSync(new URL(`../../deploy/nginx/${name}`, import.meta.url), 'utf8');

export async function startNginx(upstreamPorts: number[], options: NginxOptions = {}): Promise<Nginx> {
  const prefix = mkdtempSync(join(tmpdir(), 'herald-nginx-'));
  mkdirSync(join(prefix, 'logs'));
  const port = await freePort();
  const plainPort = options.tls ? await freePort() : null;
  writeFileSync(
    join(prefix, 'herald-upstream.conf'),
    deployed('herald-upstream.conf')
      .replace(/^\s*server api-\d+:4000.*$/gm, '')
      .replace(
        'least_conn;',
        `least_conn;\n${upstreamPorts.map((p) => `  server 127.0.0.1:${p} max_fails=1 fail_timeout=5s;`).join('\n')}`,
      ),
  );
  writeFileSync(join(prefix, 'herald-proxy.conf'), deployed('herald-proxy.conf'));
  let config: string;
  if (options.tls) {
    mkdirSync(join(prefix, 'certs'));
    copyFileSync(options.tls.certFile, join(prefix, 'certs', 'server.crt'));
    copyFileSync(options.tls.keyFile, join(prefix, 'certs', 'server.key'));
    config = deployed('nginx-tls.conf')
      .replace('listen 8443 ssl http2;', `listen 127.0.0.1:${port} ssl http2;`)
      .replace('listen 8080;', `listen 127.0.0.1:${plainPort};`)
      .replace('$host:8443', `$host:${port}`);
  } else {
    config = deployed('nginx.conf').replace('listen 8080;', `listen 127.0.0.1:${port};`);
  }
  const file = join(prefix, 'nginx.conf');
  writeFileSync(file, config);
  const child = spawn(
    'nginx',
    ['-p', prefix, '-c', file, '-g', `daemon off; pid ${join(prefix, 'nginx.pid')}; error_log stderr warn;`],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const scheme = options.tls ? 'https' : 'http';
  const url = `${scheme}://127.0.0.1:${port}`;
  const plainUrl = plainPort === null ? null : `http://127.0.0.1:${plainPort}`;
  // Started once it answers on its plain port (with TLS, the redirect), so no CA is needed here.
  const probe = plainUrl ? `${plainUrl}/healthz` : `${url}/healthz`;
  const deadline = Date.now() + 10_000;
  while (
    !(await fetch(probe, { redirect: 'manual' }).then(
      (r) => r.status < 500,
      () => false,
    ))
  ) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error('nginx did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    plainUrl,
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
