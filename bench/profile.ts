/**
 * Summarizes a V8 .cpuprofile (node --cpu-prof): self time per function and per package, counted
 * only inside the measured window when the profile covers it (V8 stamps samples with the same
 * monotonic clock as the bench's nowUs).
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { root } from './processes.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  window: string;
  totalMs: number;
  usPerUpdate: number;
  functions: Array<{ name: string; where: string; ms: number; percent: number }>;
  groups: Array<{ name: string; ms: number; percent: number }>;
}

function where(url: string): { file: string; group: string } {
  if (!url) return { file: '(native)', group: 'V8 / native (GC, program, builtins)' };
  if (url.startsWith('node:')) return { file: url, group: 'Node internals (net, stream, timers)' };
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  const [, pkg, inPackage] = /.*node_modules\/((?:@[^/]+\/)?[^/]+)\/(.*)$/.exec(path) ?? [];
  if (pkg !== undefined) return { file: `${pkg}/${inPackage}`, group: pkg };
  const file = relative(root, path);
  return { file, group: file.startsWith('src/') ? `herald ${file.split('/').slice(0, 2).join('/')}` : file };
}

export function summarizeProfile(file: string, window: [number, number] | null, delivered: number, top = 20): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const inWindow = window !== null && window[0] < profile.endTime && window[1] > profile.startTime;
  const self = new Map<number, number>();
  let t = profile.startTime;
  for (const [i, sample] of profile.samples.entries()) {
    t += profile.timeDeltas[i] ?? 0;
    const weight = profile.timeDeltas[i + 1] ?? 0;
    if (inWindow && (t < window[0] || t > window[1])) continue;
    self.set(sample, (self.get(sample) ?? 0) + weight);
  }
  const functions = new Map<string, { name: string; where: string; us: number }>();
  const groups = new Map<string, number>();
  let totalUs = 0;
  for (const [id, us] of self) {
    const node = byId.get(id)!;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === '(idle)') continue;
    const place = where(url);
    const name = functionName || '(anonymous)';
    const key = `${name} ${url}:${lineNumber}`;
    const entry = functions.get(key) ?? { name, where: url ? `${place.file}:${lineNumber + 1}` : '', us: 0 };
    entry.us += us;
    functions.set(key, entry);
    groups.set(place.group, (groups.get(place.group) ?? 0) + us);
    totalUs += us;
  }
  const percent = (us: number) => (totalUs > 0 ? (us / totalUs) * 100 : 0);
  return {
    window: inWindow ? 'measured window only' : 'whole process lifetime (start-up and connects included)',
    totalMs: totalUs / 1000,
    usPerUpdate: delivered > 0 ? totalUs / delivered : 0,
    functions: [...functions.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((f) => ({ name: f.name, where: f.where, ms: f.us / 1000, percent: percent(f.us) })),
    groups: [...groups.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 12)
      .map(([name, us]) => ({ name, ms: us / 1000, percent: percent(us) })),
  };
}
