import { parseArgs, type ParseArgsConfig } from 'node:util';

/** The exit codes of `herald`, documented in its help and the README. */
export const ExitCode = {
  Ok: 0,
  /** The job ended FAILED or CANCELLED. */
  JobFailed: 1,
  /** Bad arguments, no token or secret to use, a file that cannot be read. */
  Usage: 2,
  /** The server refused: UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, BAD_USER_INPUT, RATE_LIMITED, ... */
  Refused: 3,
  /** No server answers at the URL, or the connection was lost before a mutation's result. */
  Unreachable: 4,
  /** A bug in the CLI: the stack trace is printed. */
  Internal: 70,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** An expected failure: main prints its message (no stack trace) and exits with its code. */
export class CliError extends Error {
  override name = 'CliError';
  constructor(
    readonly exitCode: ExitCode,
    message: string,
  ) {
    super(message);
  }
}

/** What the CLI takes from its environment; main is the only reader of process.env. */
export interface CliEnv {
  HERALD_URL?: string;
  HERALD_TOKEN?: string;
  JWT_SECRET?: string;
  /** `production` stops `herald token` minting tokens. */
  NODE_ENV?: string;
}

/** One subcommand: its help text and what it does with its arguments. */
export interface Command {
  name: string;
  /** One line for `herald --help`. */
  summary: string;
  /** The whole `herald <name> --help`. */
  help: string;
  run(args: string[], env: CliEnv): Promise<ExitCode>;
}

/** Bad arguments or set-up: exit 2, with a pointer to --help. */
export function usageError(message: string): CliError {
  return new CliError(ExitCode.Usage, message);
}

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * node:util parseArgs in strict mode with `positionals` arguments exactly, its errors turned into
 * usage errors so they print as one clear line. The positionals come back as a tuple of the names'
 * length, so a command reads them without checking each one again.
 */
export function parse<const T extends Options, const P extends readonly string[] = []>(
  command: string,
  args: string[],
  options: T,
  positionals?: P,
) {
  const names: readonly string[] = positionals ?? [];
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    if (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS')) {
      throw usageError(`${command}: ${error.message}`);
    }
    throw error;
  }
  if (parsed.positionals.length !== names.length) {
    const expected = names.length === 0 ? 'no arguments' : names.map((name) => `<${name}>`).join(' ');
    throw usageError(
      `${command}: expected ${expected}, got ${parsed.positionals.length === 0 ? 'none' : parsed.positionals.map((p) => JSON.stringify(p)).join(' ')}`,
    );
  }
  return { values: parsed.values, positionals: parsed.positionals as { [K in keyof P]: string } };
}
