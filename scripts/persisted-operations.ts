import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Kind, parse, print, visit, type DefinitionNode, type FragmentDefinitionNode } from 'graphql';

const root = new URL('../', import.meta.url);

/** Where the allow-list is written, and where PERSISTED_OPERATIONS=only reads it from. */
export const PERSISTED_OPERATIONS_FILE = new URL('src/persisted-operations.json', root);

/**
 * The allow-list of PERSISTED_OPERATIONS=only: every operation of src/client/operations.graphql,
 * printed with the fragments it uses, keyed by the SHA-256 (hex) of that text, as Apollo's
 * `persistedQuery` extension and graphql-yoga's persisted operations name them.
 */
export function persistedOperations(): Record<string, string> {
  const document = parse(readFileSync(new URL('src/client/operations.graphql', root), 'utf8'));
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  }
  /** The fragments `node` spreads, and theirs, in first-use order. */
  const used = (node: DefinitionNode, found = new Set<FragmentDefinitionNode>()) => {
    visit(node, {
      FragmentSpread(spread) {
        const fragment = fragments.get(spread.name.value);
        if (fragment && !found.has(fragment)) {
          found.add(fragment);
          used(fragment, found);
        }
      },
    });
    return found;
  };
  const list: Record<string, string> = {};
  for (const definition of document.definitions) {
    if (definition.kind !== Kind.OPERATION_DEFINITION) continue;
    const text = print({ kind: Kind.DOCUMENT, definitions: [definition, ...used(definition)] });
    list[createHash('sha256').update(text).digest('hex')] = text;
  }
  return list;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  writeFileSync(PERSISTED_OPERATIONS_FILE, `${JSON.stringify(persistedOperations(), null, 2)}\n`);
  console.log(`wrote ${PERSISTED_OPERATIONS_FILE.pathname}`);
}
