import { StartQueryDocument, type AnswerSummary, type QueryUpdate } from '../client/index.js';
import { parse, type Command } from './command.js';
import { connectionHelp, connectionOptions, withClient } from './connection.js';
import { exitCodeOf, printNotice } from './output.js';

export const askCommand: Command = {
  name: 'ask',
  summary: 'ask a question of processed files, streaming the answer',
  help: `Usage: herald ask <question> [--file <id>]... [--project <id>]

Starts a query and writes the answer to stdout as its tokens arrive, then its sources.
Exits 0 when it is answered, 1 when it fails or is cancelled.

Options:
  --file <id>       a processed file to answer from (repeatable; default: all of yours)
  --project <id>    share the query with a project

${connectionHelp}`,
  async run(args, env) {
    const { values, positionals } = parse(
      'ask',
      args,
      { file: { type: 'string', multiple: true }, project: { type: 'string' }, ...connectionOptions },
      ['question'],
    );
    return withClient(values, env, async (client) => {
      const input = { question: positionals[0], fileIds: values.file, projectId: values.project };
      const { startQuery: started } = await client.mutate(StartQueryDocument, { input });
      let shown = '';
      let last: QueryUpdate | undefined;
      for await (const update of client.queryProgress(started.queryId, started.cursor)) {
        last = update;
        // `text` is the whole answer so far, so what was missed in a history gap is written too.
        if (update.text === null || update.text === shown) continue;
        if (update.text.startsWith(shown)) {
          process.stdout.write(update.text.slice(shown.length));
        } else {
          // A retried attempt answers again from the start.
          if (shown) process.stdout.write('\n');
          printNotice('the answer starts again (a new attempt)');
          process.stdout.write(update.text);
        }
        shown = update.text;
      }
      if (shown) process.stdout.write('\n');
      if (last?.status === 'COMPLETED') {
        const { sources } = last.data as Pick<AnswerSummary, 'sources'>;
        process.stdout.write(sources.length === 0 ? 'No sources.\n' : 'Sources:\n');
        for (const [index, source] of sources.entries()) {
          process.stdout.write(
            `  [${index + 1}] file ${source.fileId}, sentence ${source.sentenceIndex} (score ${source.score.toFixed(2)}): ${source.text}\n`,
          );
        }
      }
      return exitCodeOf(last);
    });
  },
};
