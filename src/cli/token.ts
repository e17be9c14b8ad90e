import { readFileSync } from 'node:fs';
import { createTokenVerifier, InvalidTokenError, signToken } from '../auth/token.js';
import { DEV_SECRET_FILE } from '../dev/data.js';
import { ExitCode, parse, usageError, type Command } from './command.js';

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** `90`, `90s`, `15m`, `1h`, `7d` in seconds. */
function parseTtl(value: string): number {
  const match = /^(\d+)([smhd]?)$/.exec(value);
  const seconds = match ? Number(match[1]) * (UNIT_SECONDS[match[2] || 's'] ?? 0) : 0;
  if (seconds <= 0) throw usageError(`token: --ttl ${JSON.stringify(value)} is not a duration like 90s, 15m, 1h or 7d`);
  return seconds;
}

function list(value: string | undefined): string[] {
  return value
    ? value
        .split(',')
        .map((item) => item.trim())
        .filter(Boolean)
    : [];
}

function secret(envSecret: string | undefined): string {
  if (envSecret) return envSecret;
  try {
    return readFileSync(DEV_SECRET_FILE, 'utf8').trim();
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw usageError(
      `token: JWT_SECRET is not set and ${DEV_SECRET_FILE} cannot be read (${reason}): set JWT_SECRET, or run \`npm run dev\` once to create it`,
    );
  }
}

export const tokenCommand: Command = {
  name: 'token',
  summary: 'mint an access token (for development)',
  help: `Usage: herald token [--sub <user>] [--roles a,b] [--projects p,q] [--ttl 1h]

Prints an access token and nothing else, so it can be captured:
  export HERALD_TOKEN=$(npx herald token --sub kim --projects demo)

Options:
  --sub <user>         the user id (default dev-user)
  --roles <a,b>        roles, comma-separated (admin may notify anyone)
  --projects <p,q>     project ids, comma-separated
  --ttl <duration>     lifetime: 90s, 15m, 1h, 7d (default 1d)

Signed with JWT_SECRET from the environment or, when it is not set, the dev secret that
\`npm run dev\` keeps in .data/jwt-secret. Refused with NODE_ENV=production.`,
  async run(args, env) {
    if (env.NODE_ENV === 'production') {
      throw usageError('token: not with NODE_ENV=production: tokens come from your identity provider there');
    }
    const { values } = parse('token', args, {
      sub: { type: 'string', default: 'dev-user' },
      roles: { type: 'string' },
      projects: { type: 'string' },
      ttl: { type: 'string', default: '1d' },
    });
    const key = secret(env.JWT_SECRET);
    const token = await signToken(key, {
      sub: values.sub,
      roles: list(values.roles),
      projects: list(values.projects),
      ttlSeconds: parseTtl(values.ttl),
    });
    // The server's own check, so a token it would refuse (a bad user or project id) is never printed.
    await createTokenVerifier({ secret: key, provider: null })(token).catch((error: unknown) => {
      throw error instanceof InvalidTokenError ? usageError(`token: ${error.message}`) : error;
    });
    process.stdout.write(`${token}\n`);
    return ExitCode.Ok;
  },
};
