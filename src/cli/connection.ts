import WebSocket from 'ws';
import { CloseCode, ErrorCode } from '../errors.js';
import { CONNECTION_CLOSED, createHeraldClient, HeraldError, type HeraldClient } from '../client/index.js';
import { CliError, ExitCode, usageError, type CliEnv } from './command.js';
import { printNotice } from './output.js';

const DEFAULT_URL = 'http://127.0.0.1:4000';

/** The options of every command that talks to a server. */
export const connectionOptions = {
  url: { type: 'string' },
  token: { type: 'string' },
} as const;

/** The help text of connectionOptions, part of every such command's help. */
export const connectionHelp = `Connection:
  --url <url>      the server (env HERALD_URL; default ${DEFAULT_URL}); http(s) or ws(s),
                   /graphql is added when the URL has no path
  --token <jwt>    the access token (env HERALD_TOKEN), e.g. from \`herald token\``;

/** `http://host:4000` as the graphql-ws endpoint `ws://host:4000/graphql`. */
export function webSocketUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw usageError(`--url: ${JSON.stringify(value)} is not a URL (e.g. ${DEFAULT_URL})`);
  }
  const protocols: Record<string, string> = { 'http:': 'ws:', 'https:': 'wss:', 'ws:': 'ws:', 'wss:': 'wss:' };
  const protocol = protocols[url.protocol];
  if (!protocol) throw usageError(`--url: ${JSON.stringify(value)} must start with http://, https://, ws:// or wss://`);
  url.protocol = protocol;
  if (url.pathname === '/') url.pathname = '/graphql';
  return url.href;
}

const authCloses = new Set<number>([CloseCode.Unauthorized, CloseCode.Revoked]);

/**
 * Runs `work` with a client of the server that `--url`/`--token` (or the environment) name, and
 * turns what can go wrong on the way into CliErrors: a server that never answers (the client alone
 * would wait for it forever), a refused token, a connection lost under a mutation. Once connected,
 * a lost connection is reported on stderr through `notice` while the client reconnects and resumes.
 */
export async function withClient<T>(
  values: { url?: string; token?: string },
  env: CliEnv,
  work: (client: HeraldClient) => Promise<T>,
  notice: (text: string) => void = printNotice,
): Promise<T> {
  const url = webSocketUrl(values.url ?? (env.HERALD_URL || DEFAULT_URL));
  const token = values.token ?? env.HERALD_TOKEN;
  if (!token)
    throw usageError('no access token: pass --token or set HERALD_TOKEN (e.g. export HERALD_TOKEN=$(npx herald token --sub me))');
  const unreachable = () =>
    new CliError(
      ExitCode.Unreachable,
      `cannot connect to ${url}${lastClose.reason ? ` (closed ${lastClose.code}: ${lastClose.reason})` : ''}`,
    );
  const client = createHeraldClient({ url, getToken: () => token, webSocketImpl: WebSocket });
  let connected = false;
  let lost = false;
  let lastClose = { code: 0, reason: '' };
  const neverConnected = new Promise<never>((_, reject) => {
    client.onState((state) => {
      if (state.status === 'closed' && state.code !== null) lastClose = { code: state.code, reason: state.reason };
      if (state.status === 'connected') {
        if (lost) notice('reconnected');
        connected = true;
        lost = false;
      }
      if (state.status !== 'reconnecting' || authCloses.has(state.closeCode ?? 0)) return;
      if (!connected) {
        reject(unreachable());
        return;
      }
      const retry = `reconnecting in ${(state.delayMs / 1000).toFixed(1)} s (attempt ${state.attempt})`;
      notice(lost ? `still no connection, ${retry}` : `connection lost (close ${state.closeCode ?? 'unknown'}), ${retry}`);
      lost = true;
    });
  });
  try {
    return await Promise.race([work(client), neverConnected]);
  } catch (error) {
    if (!(error instanceof HeraldError) || error.code !== CONNECTION_CLOSED) throw error;
    // A mutation fails at the first close, before the client could report a refused token as such.
    if (lastClose.code === CloseCode.Unauthorized)
      throw new HeraldError(lastClose.reason || 'token refused', ErrorCode.Unauthenticated, [], lastClose.code);
    if (!connected) throw unreachable();
    throw new CliError(
      ExitCode.Unreachable,
      `the connection to ${url} was lost before the result (close ${error.closeCode ?? 'unknown'}); it may or may not have taken effect`,
    );
  } finally {
    await client.dispose();
  }
}
