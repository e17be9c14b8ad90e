import { SendNotificationDocument, type NotificationLevel, type NotificationTargetInput } from '../client/index.js';
import { ExitCode, parse, usageError, type Command } from './command.js';
import { connectionHelp, connectionOptions, withClient } from './connection.js';

const LEVELS: readonly NotificationLevel[] = ['INFO', 'SUCCESS', 'WARNING', 'ERROR'];

function level(value: string | undefined): NotificationLevel | undefined {
  if (value === undefined) return undefined;
  const found = LEVELS.find((candidate) => candidate === value.toUpperCase());
  if (!found) throw usageError(`notify: --level must be one of ${LEVELS.join(', ').toLowerCase()}, got ${JSON.stringify(value)}`);
  return found;
}

function json(value: string | undefined): unknown {
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value);
  } catch (error) {
    throw usageError(`notify: --data is not JSON: ${(error as Error).message}`);
  }
}

export const notifyCommand: Command = {
  name: 'notify',
  summary: 'send a notification to a user, a role, a project or everyone',
  help: `Usage: herald notify (--user <id> | --role <name> | --project <id> | --global) --title <text>
                     [--body <text>] [--level info|success|warning|error] [--data <json>]

Sends one notification and prints its id. Anyone may notify a single user, a project's members
their project, an admin anyone.

Options:
  --user <id>, --role <name>, --project <id>, --global
                     who receives it: exactly one
  --title <text>     required, 1 to 200 characters
  --body <text>      the longer text
  --level <level>    info (default), success, warning or error
  --data <json>      anything a client needs to act on it, e.g. '{"url":"/deploys/42"}'

${connectionHelp}`,
  async run(args, env) {
    const { values } = parse('notify', args, {
      user: { type: 'string' },
      role: { type: 'string' },
      project: { type: 'string' },
      global: { type: 'boolean', default: false },
      title: { type: 'string' },
      body: { type: 'string' },
      level: { type: 'string' },
      data: { type: 'string' },
      ...connectionOptions,
    });
    const targets: NotificationTargetInput[] = [];
    if (values.user !== undefined) targets.push({ kind: 'USER', id: values.user });
    if (values.role !== undefined) targets.push({ kind: 'ROLE', id: values.role });
    if (values.project !== undefined) targets.push({ kind: 'PROJECT', id: values.project });
    if (values.global) targets.push({ kind: 'GLOBAL' });
    const [target, ...others] = targets;
    if (target === undefined || others.length > 0)
      throw usageError('notify: give exactly one of --user, --role, --project and --global');
    if (values.title === undefined) throw usageError('notify: --title is required');
    const input = { target, title: values.title, body: values.body, level: level(values.level), data: json(values.data) };
    return withClient(values, env, async (client) => {
      const { sendNotification: sent } = await client.mutate(SendNotificationDocument, { input });
      process.stdout.write(
        `notification ${sent.id} sent to ${sent.target.kind.toLowerCase()}${sent.target.id === null ? '' : ` ${sent.target.id}`}\n`,
      );
      return ExitCode.Ok;
    });
  },
};
