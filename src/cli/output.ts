import type { FileUpdate, QueryUpdate } from '../client/index.js';
import { ExitCode } from './command.js';

/** What the terminal shows of a file's or a query's update. */
export type ShownUpdate = Pick<FileUpdate | QueryUpdate, 'seq' | 'status' | 'progress' | 'event' | 'message'>;

/** A message about the run itself (a reconnect, a failure) on stderr, apart from the output. */
export function printNotice(text: string): void {
  process.stderr.write(`herald: ${text}\n`);
}

function formatPercent(progress: number): string {
  return `${Math.round(progress)}%`.padStart(4);
}

/** One line per update: `#3  PROCESSING   25%  extraction_progress  Extracted chunk 1 of 2`. */
export function describeUpdate(update: ShownUpdate): string {
  const parts = [
    `#${update.seq}`,
    update.status.padEnd(10),
    update.progress === null ? '    ' : formatPercent(update.progress),
    update.event,
  ];
  if (update.message) parts.push(update.message);
  return parts.join('  ');
}

/** Shows a stream of updates on stdout: a progress line or a line per update. */
export interface ProgressDisplay {
  show(update: ShownUpdate): void;
  /** Prints `text` on stderr without garbling the progress line. */
  notice(text: string): void;
  /** Ends the progress line, so what follows starts on a line of its own. */
  end(): void;
}

const BAR_WIDTH = 24;

/**
 * On a terminal, one line rewritten in place with a bar, the percentage, the event and the message
 * (cut to the terminal's width so it never wraps); otherwise, for logs and pipes, describeUpdate
 * lines.
 */
export function createProgressDisplay(out: NodeJS.WriteStream = process.stdout): ProgressDisplay {
  if (!out.isTTY) {
    return {
      show: (update) => out.write(`${describeUpdate(update)}\n`),
      notice: printNotice,
      end: () => {},
    };
  }
  let progress = 0;
  let line = '';
  const draw = () => out.write(`\r\x1b[2K${line}`);
  return {
    show(update) {
      progress = update.progress ?? progress;
      const filled = Math.round((Math.min(100, Math.max(0, progress)) / 100) * BAR_WIDTH);
      const text = `[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${formatPercent(progress)}  ${update.event}${update.message ? `  ${update.message}` : ''}`;
      line = text.slice(0, Math.max(BAR_WIDTH + 8, (out.columns || 80) - 1));
      draw();
    },
    notice(text) {
      out.write('\r\x1b[2K');
      printNotice(text);
      draw();
    },
    end() {
      if (line) out.write('\n');
      line = '';
    },
  };
}

/**
 * The exit code of a run whose stream ended with `last`: 0 for COMPLETED, 1 (with the reason on
 * stderr) for FAILED or CANCELLED. The server completes a stream only after a terminal update, so
 * anything else is a bug.
 */
export function exitCodeOf(last: ShownUpdate | undefined): ExitCode {
  if (last?.status === 'COMPLETED') return ExitCode.Ok;
  if (last?.status === 'FAILED' || last?.status === 'CANCELLED') {
    printNotice(`${last.status.toLowerCase()}: ${last.message ?? last.event}`);
    return ExitCode.JobFailed;
  }
  throw new Error(`the stream ended without a terminal update${last ? ` (the last was #${last.seq} ${last.event})` : ''}`);
}
