import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { StartFileProcessingDocument, type FileSummary, type FileUpdate } from '../client/index.js';
import { parse, usageError, type Command } from './command.js';
import { connectionHelp, connectionOptions, withClient } from './connection.js';
import { createProgressDisplay, exitCodeOf } from './output.js';

/** The file as UTF-8 text, which is what `content` carries; anything else is refused here, not by the server. */
function readText(path: string): string {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw usageError(`process: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw usageError(`process: ${path} is not UTF-8 text`);
  }
}

function describeSummary(summary: FileSummary): string {
  const classes = Object.entries(summary.classes).map(([name, count]) => `${count} ${name}`);
  return `${summary.chunks} chunks, ${summary.sentences} sentences (${classes.join(', ')}), ${summary.words} words`;
}

export const processCommand: Command = {
  name: 'process',
  summary: 'process a text or markdown file, showing its progress',
  help: `Usage: herald process <file> [--name <name>] [--project <id>]

Sends the file's text (UTF-8, at most MAX_CONTENT_BYTES, 5 MiB by default) to startFileProcessing,
then shows its progress until it finishes: one updating line on a terminal, a line per update
otherwise; then the summary. Exits 0 when it completes, 1 when it fails or is cancelled.

Options:
  --name <name>     the file's name on the server (default: the file's base name)
  --project <id>    share it with a project (its members may watch it; it appears in projectProgress)

${connectionHelp}`,
  async run(args, env) {
    const { values, positionals } = parse(
      'process',
      args,
      { name: { type: 'string' }, project: { type: 'string' }, ...connectionOptions },
      ['file'],
    );
    const [path] = positionals;
    const content = readText(path);
    const display = createProgressDisplay();
    return withClient(
      values,
      env,
      async (client) => {
        const input = { name: values.name ?? basename(path), content, projectId: values.project };
        const { startFileProcessing: started } = await client.mutate(StartFileProcessingDocument, { input });
        process.stdout.write(`${input.name}: file ${started.fileId}\n`);
        let last: FileUpdate | undefined;
        try {
          for await (const update of client.fileProgress(started.fileId, started.cursor)) {
            display.show(update);
            last = update;
          }
        } finally {
          display.end(); // an error message too starts on a line of its own
        }
        if (last?.status === 'COMPLETED') process.stdout.write(`Completed: ${describeSummary(last.data as FileSummary)}\n`);
        return exitCodeOf(last);
      },
      (text) => display.notice(text),
    );
  },
};
