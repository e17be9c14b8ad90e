import { getOperationAST, Kind, OperationTypeNode, type ExecutionArgs, type ExecutionResult } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { inSpan, SpanKind } from '../tracing.js';

/**
 * A span for each GraphQL mutation (`mutation startFileProcessing`), active while it executes, so
 * what it starts (the update it publishes, the job it enqueues and that job's attempts) joins its
 * trace. Installed only when tracing is configured; queries and subscriptions get no span.
 */
export function useMutationTracing(): Plugin {
  return {
    onExecute({ args, executeFn, setExecuteFn }) {
      const { document, operationName } = args as ExecutionArgs;
      const execute = executeFn as (execution: ExecutionArgs) => Promise<ExecutionResult> | ExecutionResult;
      const operation = getOperationAST(document, operationName);
      if (operation?.operation !== OperationTypeNode.MUTATION) return;
      const fields = operation.selectionSet.selections.flatMap((selection) =>
        selection.kind === Kind.FIELD ? [selection.name.value] : [],
      );
      const attributes = { 'graphql.operation.type': 'mutation', 'graphql.operation.name': operation.name?.value ?? '' };
      setExecuteFn((execution) =>
        inSpan(`mutation ${fields.join(',')}`, { kind: SpanKind.SERVER, attributes }, async () => execute(execution)),
      );
    },
  };
}
