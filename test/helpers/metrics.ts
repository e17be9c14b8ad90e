/** One sample of Prometheus text: its name, labels and value. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const [, name, labelText = '', value] = SAMPLE.exec(line) ?? [];
    if (name === undefined) continue;
    const labels = Object.fromEntries([...labelText.matchAll(LABEL)].map(([, key, labelValue]) => [key, labelValue]));
    samples.push({ name, labels, value: Number(value) });
  }
  return samples;
}

/**
 * The value of `name` summed over its samples whose labels include `labels` (others, such as
 * `instance`, are ignored); null when it has no such sample.
 */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number | null {
  const matching = parseMetrics(text).filter(
    (sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value),
  );
  return matching.length === 0 ? null : matching.reduce((sum, sample) => sum + sample.value, 0);
}

/** The Prometheus text a process serves at `baseUrl`/metrics. */
export async function scrape(baseUrl: string): Promise<string> {
  return (await fetch(`${baseUrl}/metrics`)).text();
}
