/**
 * Starting pinned child processes and reading what the kernel says about them: CPU time and RSS
 * of one process (/proc/<pid>/stat, /proc/<pid>/status) and how busy each core was (/proc/stat).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep } from './shared.js';

export const root = fileURLToPath(new URL('../', import.meta.url));
export const resultsDir = join(root, 'bench', 'results');
export const logsDir = join(resultsDir, 'logs');

/** Kernel clock ticks per second, the unit of utime and stime in /proc/<pid>/stat. */
const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** The soft (or hard) limit on open files this process, and so each child, has. */
export function openFileLimit(kind: 'soft' | 'hard' = 'soft'): number {
  const value = execFileSync('sh', ['-c', kind === 'soft' ? 'ulimit -n' : 'ulimit -Hn'], { encoding: 'utf8' }).trim();
  return value === 'unlimited' ? Number.POSITIVE_INFINITY : Number(value);
}

function hasCommand(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export const canPin = hasCommand('taskset');
const canRaiseLimit = hasCommand('prlimit');

/** Pins a running process (every thread) to one core; quietly does nothing without taskset. */
export function pinProcess(pid: number, core: number): void {
  if (!canPin) return;
  execFileSync('taskset', ['-a', '-cp', String(core), String(pid)], { stdio: 'ignore' });
}

export interface Child {
  name: string;
  process: ChildProcess;
  pid: number;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
}

export interface SpawnOptions {
  core: number;
  env?: Record<string, string>;
  /** Node flags before the entry (e.g. --cpu-prof). */
  nodeArgs?: string[];
  ipc?: boolean;
  /**
   * Open files the child needs. Below that, it is started under `prlimit --nofile` raised as far
   * as the hard limit allows (raising the hard limit itself needs root: `ulimit -n 65536`).
   */
  openFiles?: number;
}

/**
 * Runs a TypeScript entry with tsx, pinned with `taskset -c <core>` (taskset and prlimit exec the
 * program, so the pid is the Node process itself). Output goes to bench/results/logs/<name>.log.
 */
export function spawnPinned(name: string, entry: string, options: SpawnOptions): Child {
  mkdirSync(logsDir, { recursive: true });
  const log = openSync(join(logsDir, `${name}.log`), 'w');
  const command: string[] = [];
  if (options.openFiles && openFileLimit() < options.openFiles && canRaiseLimit) {
    const hard = openFileLimit('hard');
    const soft = Math.min(options.openFiles, hard);
    command.push('prlimit', `--nofile=${soft}:${Number.isFinite(hard) ? hard : soft}`);
  }
  if (canPin) command.push('taskset', '-c', String(options.core));
  command.push(process.execPath, ...(options.nodeArgs ?? []), '--import', 'tsx', entry);
  const [executable = process.execPath, ...args] = command;
  const child = spawn(executable, args, {
    cwd: root,
    env: { ...process.env, NODE_ENV: 'production', ...options.env },
    stdio: ['ignore', log, log, ...(options.ipc ? (['ipc'] as const) : [])],
  });
  closeSync(log);
  if (child.pid === undefined) throw new Error(`could not start ${name}`);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    name,
    process: child,
    pid: child.pid,
    async stop(graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Resolves once something accepts TCP connections on the port; rejects if the child exits first. */
export async function waitForPort(port: number, child: Child, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.process.exitCode !== null) {
      throw new Error(`${child.name} exited with ${child.process.exitCode}; see bench/results/logs/${child.name}.log`);
    }
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`${child.name} did not listen on ${port} within ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** User plus system CPU time of a process (all its threads), in µs. */
export function cpuTimeUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields after the command name start at field 3 (state); utime and stime are fields 14 and 15.
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLOCK_TICKS;
}

/** Resident set size of a process, in KB (VmRSS). */
export function rssKb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return match ? Number(match[1]) : 0;
}

/** Busy and total jiffies of each core, from /proc/stat. */
export function coreTimes(): Array<{ busy: number; total: number }> {
  const cores: Array<{ busy: number; total: number }> = [];
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const [, core, fields = ''] = /^cpu(\d+)\s+(.*)$/.exec(line) ?? [];
    if (core === undefined) continue;
    const values = fields.trim().split(/\s+/).map(Number);
    const total = values.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (values[3] ?? 0) + (values[4] ?? 0);
    cores[Number(core)] = { busy: total - idle, total };
  }
  return cores;
}

/** Percent busy of each core between two coreTimes() readings. */
export function coreBusyPercent(before: ReturnType<typeof coreTimes>, after: ReturnType<typeof coreTimes>): number[] {
  return after.map((a, i) => {
    const b = before[i] ?? { busy: 0, total: 0 };
    const total = a.total - b.total;
    return total > 0 ? ((a.busy - b.busy) / total) * 100 : 0;
  });
}
