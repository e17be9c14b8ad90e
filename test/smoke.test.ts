import { afterAll, beforeAll, expect, it } from 'vitest';
import { startHerald, type Herald } from './helpers/herald.js';
import { collect } from './helpers/streams.js';

let herald: Herald;
beforeAll(async () => {
  herald = await startHerald();
});
afterAll(() => herald?.stop());

it('smoke', async () => {
  const token = await herald.token('alice');
  const start = await herald.http(token, `mutation($input: StartFileProcessingInput!) { startFileProcessing(input: $input) { fileId job { id state } } }`, {
    input: { name: 'doc.md', content: '# Title\n\nHerald is a progress server. What is it? It has 3 parts.\n\nAnother paragraph here.' },
  });
  console.log(JSON.stringify(start));
  const fileId = (start.body.data!.startFileProcessing as { fileId: string }).fileId;
  const ws = herald.ws(token);
  const got = await collect<Record<string, unknown>>(ws, `subscription($id: ID!) { fileProgress(fileId: $id) { seq event status progress cursor data } }`, { id: fileId }, { field: 'fileProgress' });
  console.log(JSON.stringify(got, null, 1).slice(0, 3000));
  const sse = herald.sse(token);
  const got2 = await collect<Record<string, unknown>>(sse, `subscription($id: ID!) { fileProgress(fileId: $id) { seq event } }`, { id: fileId }, { field: 'fileProgress' });
  console.log(JSON.stringify(got2));
  const q = await herald.http(token, `mutation($input: StartQueryInput!) { startQuery(input: $input) { queryId } }`, { input: { question: 'What is Herald?' } });
  const queryId = (q.body.data!.startQuery as { queryId: string }).queryId;
  const got3 = await collect<Record<string, unknown>>(ws, `subscription($id: ID!) { queryProgress(queryId: $id) { seq event token text data } }`, { id: queryId }, { field: 'queryProgress' });
  console.log(JSON.stringify(got3));
  console.log(JSON.stringify(await herald.http(null, '{ me { id } }')));
  expect(got.completed).toBe(true);
});
