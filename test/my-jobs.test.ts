import { afterAll, beforeAll, expect, it } from 'vitest';
import { CancelJobDocument, StartFileProcessingDocument, StartQueryDocument } from '../src/client/generated.js';
import { startHerald, type Herald } from './helpers/herald.js';

const MY_JOBS = `query ($first: Int, $after: String, $kind: ResourceKind, $state: JobState, $everyone: Boolean) {
  myJobs(first: $first, after: $after, kind: $kind, state: $state, everyone: $everyone) {
    edges { cursor node { id kind ownerId state } }
    pageInfo { hasNextPage endCursor }
  }
}`;

interface Page {
  edges: Array<{ cursor: string; node: { id: string; kind: string; ownerId: string; state: string } }>;
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

// No worker: every job stays WAITING unless cancelled, so states are what the test makes them.
let h: Herald;
let jo: string;
let mo: string;
let admin: string;
/** jo's jobs, oldest first. */
const started: Array<{ id: string; kind: 'FILE' | 'QUERY' }> = [];
let mosFile: string;

beforeAll(async () => {
  h = await startHerald({}, { workers: false });
  [jo, mo, admin] = await Promise.all([h.token('jo'), h.token('mo'), h.token({ sub: 'root', roles: ['admin'] })]);
  const startFile = async (token: string, name: string) => {
    const { body } = await h.http(token, StartFileProcessingDocument, { input: { name, content: 'Some text.' } });
    return body.data!.startFileProcessing.fileId;
  };
  for (const name of ['a.md', 'b.md', 'c.md']) started.push({ id: await startFile(jo, name), kind: 'FILE' });
  for (const question of ['why?', 'how?']) {
    const { body } = await h.http(jo, StartQueryDocument, { input: { question } });
    started.push({ id: body.data!.startQuery.queryId, kind: 'QUERY' });
  }
  mosFile = await startFile(mo, 'mine.md');
  await h.http(jo, CancelJobDocument, { id: started[1]!.id });
}, 60_000);
afterAll(() => h.stop());

async function myJobs(token: string, variables: Record<string, unknown> = {}) {
  const { body } = await h.http<{ myJobs: Page }>(token, MY_JOBS, variables);
  return body;
}

async function page(token: string, variables: Record<string, unknown> = {}): Promise<Page> {
  const body = await myJobs(token, variables);
  expect(body.errors).toBeUndefined();
  return body.data!.myJobs;
}

it("lists the viewer's jobs newest first, page by page, each once", async () => {
  const seen: string[] = [];
  let after: string | null = null;
  for (;;) {
    const { edges, pageInfo }: Page = await page(jo, { first: 2, after });
    seen.push(...edges.map((edge) => edge.node.id));
    if (!pageInfo.hasNextPage) break;
    expect(edges).toHaveLength(2);
    expect(pageInfo.endCursor).toBe(edges.at(-1)!.cursor);
    after = pageInfo.endCursor;
  }
  expect(seen).toEqual(started.map((job) => job.id).reverse());
  const first = await page(jo);
  expect(first.edges.map((edge) => edge.node.ownerId)).toEqual(Array(5).fill('jo'));
  expect(first.edges.map((edge) => edge.node.kind)).toEqual(started.map((job) => job.kind).reverse());
  // An edge's cursor continues right after it.
  const rest = await page(jo, { after: first.edges[2]!.cursor });
  expect(rest.edges.map((edge) => edge.node.id)).toEqual([started[1]!.id, started[0]!.id]);
});

it('filters by kind and by state', async () => {
  const queries = await page(jo, { kind: 'QUERY' });
  expect(queries.edges.map((edge) => edge.node.id)).toEqual([started[4]!.id, started[3]!.id]);
  const cancelled = await page(jo, { state: 'CANCELLED' });
  expect(cancelled.edges.map((edge) => edge.node.id)).toEqual([started[1]!.id]);
  const waitingFiles = await page(jo, { kind: 'FILE', state: 'WAITING' });
  expect(waitingFiles.edges.map((edge) => edge.node.id)).toEqual([started[2]!.id, started[0]!.id]);
  expect(waitingFiles.pageInfo.hasNextPage).toBe(false);
});

it("shows others' jobs to no one but admins, who list everyone's with everyone: true", async () => {
  expect((await page(mo)).edges.map((edge) => edge.node.id)).toEqual([mosFile]);
  const refused = await myJobs(mo, { everyone: true });
  expect(refused.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  expect((await page(admin)).edges).toEqual([]);
  const everyone = await page(admin, { everyone: true });
  expect(everyone.edges.map((edge) => [edge.node.id, edge.node.ownerId])).toEqual([
    [mosFile, 'mo'],
    ...started.map((job) => [job.id, 'jo']).reverse(),
  ]);
});

it('refuses a bad page size or cursor with BAD_USER_INPUT', async () => {
  for (const variables of [
    { first: 0 },
    { first: 101 },
    { after: 'not-a-cursor' },
    { after: Buffer.from('x:y').toString('base64url') },
  ]) {
    const body = await myJobs(jo, variables);
    expect(body.errors?.[0]?.extensions?.code, JSON.stringify(variables)).toBe('BAD_USER_INPUT');
  }
});
