import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** Runs one of Herald's entry points (src/worker.ts, src/main.ts) as a real child process. */
export function spawnEntry(entry: string, env: Record<string, string>): ChildProcess & { stop(): Promise<void> } {
  const child = spawn(process.execPath, ['--import', 'tsx', entry], {
    cwd: root,
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return Object.assign(child, {
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  });
}

/** Resolves when the child prints a line containing `text` (its pino log), rejects on exit. */
export function waitForOutput(child: ChildProcess, text: string, timeoutMs = 20_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => reject(new Error(`no "${text}" within ${timeoutMs} ms: ${buffered.slice(-500)}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString();
      if (buffered.includes(text)) {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before "${text}": ${buffered.slice(-500)}`));
    });
  });
}
