import {
  createSourceEventStream,
  execute,
  getOperationAST,
  Kind,
  visit,
  type ASTNode,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type FieldNode,
  type GraphQLSchema,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { compileQuery, isCompiledQuery, type CompiledQuery } from 'graphql-jit';
import { EVENT_CURSOR, SHARED_RESULTS, type Context } from '../schema/builder.js';
import { isEventStream, MappedStream, type EventStream } from '../updates/event-stream.js';
import { isAsyncIterable } from './async-iterable.js';

type Result = ExecutionResult | Promise<ExecutionResult>;

/** How one operation of one document runs its events. */
interface Plan {
  compiled: CompiledQuery;
  /** The key of the results this subscriber can share with others, or null when it shares none. */
  shareKey(variables: ExecutionArgs['variableValues']): string | null;
}

const plans = new WeakMap<DocumentNode, Map<string, Plan | null>>();
const documentIds = new WeakMap<DocumentNode, number>();
let nextDocumentId = 0;
/**
 * Where an event keeps the results computed for it so far (gone with the event, see EVENT in
 * src/updates/stream.ts): the first under its share key, any others in a map. Most events meet one
 * distinct operation, so most need no map.
 */
const FIRST_KEY = Symbol('firstKey');
const FIRST_RESULT = Symbol('firstResult');
const MORE_RESULTS = Symbol('moreResults');
interface ResultCarrier {
  [FIRST_KEY]?: string;
  [FIRST_RESULT]?: Result;
  [MORE_RESULTS]?: Map<string, Result>;
}

/**
 * Where an SSE subscriber's result carries the cursor of the event it was made from (see
 * EVENT_CURSOR), for the event's `id:`. A result shared by several subscribers comes from one
 * event, so it has one cursor whoever tags it.
 */
const RESULT_CURSOR = Symbol('resultCursor');
interface CursorCarrier {
  [RESULT_CURSOR]?: string;
}

/** The cursor of the event `result` was made from, when its field declares one and the subscriber is on SSE. */
export function resultCursor(result: object): string | undefined {
  return (result as CursorCarrier)[RESULT_CURSOR];
}

function withCursor(result: ExecutionResult, cursor: string): ExecutionResult {
  (result as CursorCarrier)[RESULT_CURSOR] = cursor;
  return result;
}

type EventCursor = (event: unknown) => string;

/** The EVENT_CURSOR of subscription field `field`, or null. */
function eventCursorOf(schema: GraphQLSchema, field: string): EventCursor | null {
  const cursorOf = schema.getSubscriptionType()?.getFields()[field]?.extensions[EVENT_CURSOR];
  return typeof cursorOf === 'function' ? (cursorOf as EventCursor) : null;
}

/** Variables the selection under the root field uses: the root field's own arguments only choose the events. */
function variablesBelowRoot(document: DocumentNode, root: FieldNode): string[] {
  const names = new Set<string>();
  const collect = (node: ASTNode) => visit(node, { Variable: (variable) => void names.add(variable.name.value) });
  if (root.selectionSet) collect(root.selectionSet);
  for (const directive of root.directives ?? []) collect(directive);
  for (const definition of document.definitions) if (definition.kind === Kind.FRAGMENT_DEFINITION) collect(definition);
  return [...names].sort();
}

function makePlan(schema: GraphQLSchema, document: DocumentNode, operationName: string | undefined): Plan | null {
  const compiled = compileQuery(schema, document, operationName, { disablingCapturingStackErrors: true });
  if (!isCompiledQuery(compiled)) return null;
  const operation = document.definitions.find(
    (definition) => definition.kind === Kind.OPERATION_DEFINITION && (!operationName || definition.name?.value === operationName),
  );
  const root = operation?.kind === Kind.OPERATION_DEFINITION ? operation.selectionSet.selections[0] : undefined;
  const field = root?.kind === Kind.FIELD ? schema.getSubscriptionType()?.getFields()[root.name.value] : undefined;
  if (!root || root.kind !== Kind.FIELD || field?.extensions?.[SHARED_RESULTS] !== true) {
    return { compiled, shareKey: () => null };
  }
  let documentId = documentIds.get(document);
  if (documentId === undefined) documentIds.set(document, (documentId = nextDocumentId++));
  const prefix = `${documentId}:${operationName ?? ''}:`;
  const names = variablesBelowRoot(document, root);
  return {
    compiled,
    shareKey: (variables) => prefix + (names.length === 0 ? '' : JSON.stringify(names.map((name) => variables?.[name]))),
  };
}

function planFor(args: ExecutionArgs): Plan | null {
  let byOperation = plans.get(args.document);
  if (!byOperation) plans.set(args.document, (byOperation = new Map<string, Plan | null>()));
  const name = args.operationName ?? '';
  if (!byOperation.has(name)) byOperation.set(name, makePlan(args.schema, args.document, args.operationName ?? undefined));
  return byOperation.get(name)!;
}

/** A subscription as the transports consume it: the errors that stopped it, or its results. */
export type SubscriptionResult = ExecutionResult | EventStream<ExecutionResult>;

export type SubscriptionTransport = 'websocket' | 'sse';

/**
 * A subscription's share of the process's metrics, bound once when it opens so that a delivery
 * costs a call and no label lookup.
 */
export interface SubscriptionMeter {
  /** One event handed to this subscriber, its result ready to be written. */
  delivered(event: unknown): void;
  /** It ended, however; called once. */
  closed(): void;
}

/** Told when a subscription opens, with its root field and transport. */
export type OnSubscriptionOpen = (field: string, transport: SubscriptionTransport) => SubscriptionMeter;

function rootField(args: ExecutionArgs): string {
  const root = getOperationAST(args.document, args.operationName)?.selectionSet.selections[0];
  return root?.kind === Kind.FIELD ? root.name.value : 'unknown';
}

/** A subscriber's events run through its operation: one per subscription, so what it needs is in fields, not closures. */
class ExecutedStream extends MappedStream<unknown, ExecutionResult> {
  constructor(
    source: EventStream<unknown>,
    private readonly args: ExecutionArgs,
    private readonly plan: Plan | null,
    /** The key of the results shared with other subscribers, or null when none are. */
    private readonly key: string | null,
    private readonly meter: SubscriptionMeter,
    /** Set for SSE subscribers only: WebSocket messages have no event id. */
    private readonly cursorOf: EventCursor | null,
  ) {
    super(source);
  }

  map(event: unknown): Result {
    const result = this.result(event);
    this.meter.delivered(event);
    const { cursorOf } = this;
    if (cursorOf === null) return result;
    const cursor = cursorOf(event);
    return result instanceof Promise ? result.then((value) => withCursor(value, cursor)) : withCursor(result, cursor);
  }

  protected override onEnd(): void {
    this.meter.closed();
  }

  private result(event: unknown): Result {
    const { key } = this;
    if (key === null || typeof event !== 'object' || event === null) return this.run(event);
    const carrier = event as ResultCarrier;
    if (carrier[FIRST_KEY] === undefined) {
      carrier[FIRST_KEY] = key;
      return (carrier[FIRST_RESULT] = this.run(event));
    }
    if (carrier[FIRST_KEY] === key) return carrier[FIRST_RESULT]!;
    const more = (carrier[MORE_RESULTS] ??= new Map<string, Result>());
    let result = more.get(key);
    if (!result) more.set(key, (result = this.run(event)));
    return result;
  }

  private run(event: unknown): Result {
    const { args, plan } = this;
    return plan ? plan.compiled.query(event, args.contextValue, args.variableValues) : execute({ ...args, rootValue: event });
  }
}

/**
 * How both transports start a subscription: the field's `subscribe` runs for this subscriber
 * (authorization, cursor, replay); its events then run through the operation's compiled plan, once
 * per event for all subscribers that can share the result.
 */
export function createSubscriptionExecutor(onOpen: OnSubscriptionOpen) {
  return async function subscribeToEvents(args: ExecutionArgs): Promise<SubscriptionResult> {
    const source = await createSourceEventStream(args);
    if (!isAsyncIterable(source)) return source;
    if (!isEventStream(source)) throw new Error('a subscription field must return an EventStream (src/updates/event-stream.ts)');
    const plan = planFor(args);
    const key = plan?.shareKey(args.variableValues) ?? null;
    const transport = (args.contextValue as Partial<Context>).connection ? 'websocket' : 'sse';
    const field = rootField(args);
    const cursorOf = transport === 'sse' ? eventCursorOf(args.schema, field) : null;
    return new ExecutedStream(source, args, plan, key, onOpen(field, transport), cursorOf);
  };
}

export type SubscriptionExecutor = ReturnType<typeof createSubscriptionExecutor>;

/**
 * Runs subscription events with a compiled plan (graphql-jit, about four times faster than
 * graphql-js here) and, for fields marked SHARED_RESULTS, once per distinct operation per event
 * instead of once per subscriber: with 2,000 subscribers on one file, an update is executed once.
 * The sharing needs the stream to hand every subscriber the same event object (see
 * src/updates/stream.ts); the subscription's own setup (authorization, cursor, replay) still runs
 * per subscriber through the field's `subscribe`.
 */
export function useSubscriptionExecution(subscribe: SubscriptionExecutor): Plugin {
  return {
    onSubscribe({ setSubscribeFn }) {
      setSubscribeFn(subscribe);
    },
  };
}
