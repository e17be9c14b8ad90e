import { HeraldError } from '../client/index.js';
import { askCommand } from './ask.js';
import { CliError, ExitCode, usageError, type CliEnv, type Command } from './command.js';
import { connectionHelp } from './connection.js';
import { notifyCommand } from './notify.js';
import { processCommand } from './process.js';
import { tokenCommand } from './token.js';
import { watchCommand } from './watch.js';

const commands: readonly Command[] = [tokenCommand, processCommand, askCommand, watchCommand, notifyCommand];
const names = commands.map((command) => command.name).join(', ');

const help = `Usage: herald <command> [options]    (npx herald ... in the project)

Commands:
${commands.map((command) => `  ${command.name.padEnd(9)}${command.summary}`).join('\n')}

\`herald <command> --help\` shows a command's options.

${connectionHelp}

Exit codes:
  0   done (the job completed)
  1   the job failed or was cancelled
  2   usage: bad arguments, no token or secret, a file that cannot be read
  3   the server refused: UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, BAD_USER_INPUT, RATE_LIMITED, ...
  4   cannot connect to the server, or lost the connection before a mutation's result
  70  a bug in herald (the stack trace is printed)
`;

/** Global options that take a value, so their value is not mistaken for the command. */
const GLOBAL_WITH_VALUE = new Set(['--url', '--token']);

/** Finds the command wherever the global options put it: `herald --url U watch ...` works too. */
function splitCommand(argv: string[]): { name: string | null; args: string[] } {
  let skipValue = false;
  for (const [i, arg] of argv.entries()) {
    if (skipValue) skipValue = false;
    else if (arg === '--') break;
    else if (GLOBAL_WITH_VALUE.has(arg)) skipValue = true;
    else if (!arg.startsWith('-')) return { name: arg, args: [...argv.slice(0, i), ...argv.slice(i + 1)] };
  }
  return { name: null, args: argv };
}

function wantsHelp(args: string[]): boolean {
  const end = args.indexOf('--');
  return (end === -1 ? args : args.slice(0, end)).some((arg) => arg === '--help' || arg === '-h');
}

async function main(argv: string[], env: CliEnv): Promise<ExitCode> {
  const { name, args } = splitCommand(argv);
  if (name === null && wantsHelp(args)) {
    process.stdout.write(help);
    return ExitCode.Ok;
  }
  if (name === null) throw usageError(`no command given; one of ${names}`);
  const command = commands.find((candidate) => candidate.name === name);
  if (!command) throw usageError(`unknown command ${JSON.stringify(name)}; one of ${names}`);
  if (wantsHelp(args)) {
    process.stdout.write(`${command.help}\n`);
    return ExitCode.Ok;
  }
  return command.run(args, env);
}

/** Expected failures as one line on stderr, each with its exit code; a stack trace only for a bug. */
function report(error: unknown): ExitCode {
  if (error instanceof CliError) {
    process.stderr.write(`herald: ${error.message}\n`);
    if (error.exitCode === ExitCode.Usage) process.stderr.write('Run `herald --help` or `herald <command> --help` for usage.\n');
    return error.exitCode;
  }
  if (error instanceof HeraldError) {
    process.stderr.write(`herald: ${error.code}: ${error.message}\n`);
    return ExitCode.Refused;
  }
  process.stderr.write(
    `herald: unexpected error (a bug; please report it):\n${error instanceof Error ? error.stack : String(error)}\n`,
  );
  return ExitCode.Internal;
}

const { HERALD_URL, HERALD_TOKEN, JWT_SECRET } = process.env;
void main(process.argv.slice(2), { HERALD_URL, HERALD_TOKEN, JWT_SECRET })
  .catch(report)
  .then((code) => {
    // Exit explicitly, once the output is flushed: graphql-ws leaves its idle-close timer (5 s)
    // running after the client is disposed, which would keep the process alive that long.
    process.stderr.write('', () => process.stdout.write('', () => process.exit(code)));
  });
