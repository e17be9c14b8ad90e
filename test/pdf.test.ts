import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { print } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileProgressDocument, StartFileProcessingDocument, type FileProgressSubscription } from '../src/client/generated.js';
import { makeImagePdf, makePdf } from './helpers/documents.js';
import { startHerald, type GraphQLBody, type Herald } from './helpers/herald.js';
import { collect, errorCodes } from './helpers/streams.js';

type FileUpdate = FileProgressSubscription['fileProgress'];

let herald: Herald;
let token: string;
let scratch: string;

beforeAll(async () => {
  herald = await startHerald({ PROGRESS_UPDATES: '50' });
  token = await herald.token('pia');
  scratch = mkdtempSync(join(tmpdir(), 'herald-pdf-'));
});
afterAll(async () => {
  await herald?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

/** startFileProcessing as a GraphQL multipart request, as a browser's form sends a file. */
async function upload(bytes: Uint8Array, type: string) {
  const form = new FormData();
  const operations = { query: print(StartFileProcessingDocument), variables: { input: { name: 'report.pdf', file: null } } };
  form.set('operations', JSON.stringify(operations));
  form.set('map', JSON.stringify({ 0: ['variables.input.file'] }));
  form.set('0', new Blob([bytes], { type }), 'report.pdf');
  const response = await fetch(`${herald.url}/graphql`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, accept: 'application/graphql-response+json, application/json' },
    body: form,
  });
  return (await response.json()) as GraphQLBody<{ startFileProcessing: { fileId: string; cursor: string } }>;
}

async function processed(bytes: Uint8Array, type = 'application/pdf'): Promise<FileUpdate[]> {
  const body = await upload(bytes, type);
  expect(body.errors).toBeUndefined();
  const { fileId, cursor } = body.data!.startFileProcessing;
  const run = await collect<FileUpdate>(
    herald.ws(token),
    FileProgressDocument,
    { fileId, after: cursor },
    { field: 'fileProgress' },
  );
  expect(run.errors).toEqual([]);
  expect(run.completed).toBe(true);
  return run.items;
}

/** Runs qpdf (Debian's) on a PDF: how the suite makes encrypted ones. */
function qpdf(bytes: Uint8Array, ...args: string[]): Uint8Array {
  const input = join(scratch, 'in.pdf');
  const output = join(scratch, 'out.pdf');
  writeFileSync(input, bytes);
  execFileSync('qpdf', [...args, '--', input, output]);
  return readFileSync(output);
}

const page = (n: number) => [
  `Page ${n} reports that revenue grew by ${n * 4} percent.`,
  `Why did it grow on page ${n}?`,
  `The team will ship release ${n} next week.`,
];

describe('PDF uploads', () => {
  it('extracts text page by page, reporting each page, and processes it like any document', async () => {
    const updates = await processed(await makePdf([page(1), page(2), page(3)]));
    expect(updates.map((u) => u.seq)).toEqual(updates.map((_, i) => i + 1));
    expect(updates.find((u) => u.event === 'processing_started')?.data).toMatchObject({ format: 'pdf' });
    const pages = updates.filter((u) => u.event === 'extraction_progress');
    expect(pages.map((u) => u.message)).toEqual(['Extracted page 1 of 3', 'Extracted page 2 of 3', 'Extracted page 3 of 3']);
    expect(pages.map((u) => u.data)).toEqual([1, 2, 3].map((n) => ({ current: n, total: 3, unit: 'page', sentences: 3 })));
    const done = updates.at(-1)!;
    expect(done).toMatchObject({ event: 'processing_completed', status: 'COMPLETED' });
    expect(done.data).toMatchObject({ chunks: 3, sentences: 9 });
  });

  it('recognises a PDF sent as application/octet-stream by its first bytes, and opens one with only an owner password', async () => {
    expect((await processed(await makePdf([page(1)]), 'application/octet-stream')).at(-1)).toMatchObject({ status: 'COMPLETED' });
    const restricted = qpdf(await makePdf([page(1), page(2)]), '--encrypt', '', 'owner-secret', '256');
    expect((await processed(restricted)).at(-1)!.data).toMatchObject({ chunks: 2, sentences: 6 });
  });

  it('refuses an encrypted, a corrupt and an image-only PDF with BAD_USER_INPUT saying why, and keeps serving', async () => {
    const refusals: Array<[Uint8Array, RegExp]> = [
      [qpdf(await makePdf([page(1)]), '--encrypt', 'user-secret', 'owner-secret', '256'), /the PDF is encrypted/],
      [Buffer.from('%PDF-1.7\nthis is not a PDF at all\n%%EOF\n'), /the file is not a readable PDF/],
      [await makeImagePdf(2), /the PDF has no text to extract: its 2 pages are images/],
    ];
    for (const [bytes, reason] of refusals) {
      const body = await upload(bytes, 'application/pdf');
      expect(errorCodes(body.errors)).toEqual(['BAD_USER_INPUT']);
      expect(body.errors![0]!.message).toMatch(reason);
      expect(body.data?.startFileProcessing ?? null).toBeNull();
    }
    expect((await processed(await makePdf([page(4)]))).at(-1)).toMatchObject({ status: 'COMPLETED' });
  });
});
