import { parse, usageError, type Command } from './command.js';
import { connectionHelp, connectionOptions, withClient } from './connection.js';
import { describeUpdate, exitCodeOf, type ShownUpdate } from './output.js';

export const watchCommand: Command = {
  name: 'watch',
  summary: "print a file's or a query's updates until it finishes",
  help: `Usage: herald watch file|query <id> [--after <cursor>] [--json]

Prints each update, one line each, until the terminal one; across reconnects and server restarts
it resumes after the last update printed, so each is printed once and in order. Without --after
the server first replays its last REPLAY_ON_CONNECT updates (10 by default); with the cursor
startFileProcessing or startQuery returned, every update from the first.
Exits 0 when the job completed, 1 when it failed or was cancelled.

Options:
  --after <cursor>   start right after this update
  --json             one JSON object per line (every field, cursor included)

${connectionHelp}`,
  async run(args, env) {
    const { values, positionals } = parse(
      'watch',
      args,
      { after: { type: 'string' }, json: { type: 'boolean', default: false }, ...connectionOptions },
      ['file|query', 'id'],
    );
    const [kind, id] = positionals;
    if (kind !== 'file' && kind !== 'query') throw usageError(`watch: expected file or query, got ${JSON.stringify(kind)}`);
    return withClient(values, env, async (client) => {
      const updates = kind === 'file' ? client.fileProgress(id, values.after) : client.queryProgress(id, values.after);
      let last: ShownUpdate | undefined;
      for await (const update of updates) {
        process.stdout.write(`${values.json ? JSON.stringify(update) : describeUpdate(update)}\n`);
        last = update;
      }
      return exitCodeOf(last);
    });
  },
};
