import { existsSync, readFileSync } from 'node:fs';
import { generate } from '@graphql-codegen/cli';
import { buildSchema, findBreakingChanges, printSchema } from 'graphql';
import { describe, expect, it } from 'vitest';
import codegenConfig from '../codegen.js';
import { persistedOperations } from '../scripts/persisted-operations.js';
import { schema } from '../src/schema/index.js';

const root = new URL('../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');
/** The contract clients rely on, copied into the repository from ../shared so the suite needs nothing outside it. */
const contractPath = new URL('contract/contract.graphql', root);
/** Where the shared contract lives beside a working checkout; a fresh clone has nothing there. */
const sharedContractPath = new URL('../shared/contract.graphql', root);

describe('generated files', () => {
  it('schema.graphql is what the Pothos schema prints (run npm run generate)', () => {
    expect(read('schema.graphql')).toBe(`${printSchema(schema)}\n`);
  });

  it('schema.graphql is a compatible superset of the shared contract', () => {
    const contract = buildSchema(readFileSync(contractPath, 'utf8'));
    const breaking = findBreakingChanges(contract, buildSchema(read('schema.graphql')));
    expect(breaking.map((change) => `${change.type}: ${change.description}`)).toEqual([]);
  });

  it.skipIf(!existsSync(sharedContractPath))('the copy in contract/ is the shared contract beside the repository', () => {
    expect(read('contract/contract.graphql')).toBe(readFileSync(sharedContractPath, 'utf8'));
  });

  it('src/client/generated.ts is what codegen produces (run npm run codegen)', async () => {
    const outputs = await generate({ ...codegenConfig, cwd: root.pathname, silent: true }, false);
    expect(outputs).toHaveLength(1);
    expect(read('src/client/generated.ts')).toBe(outputs[0].content);
  });

  it('src/persisted-operations.json is the allow-list of src/client/operations.graphql (run npm run persisted-operations)', () => {
    expect(read('src/persisted-operations.json')).toBe(`${JSON.stringify(persistedOperations(), null, 2)}\n`);
  });
});
