import { canAccess, isAdmin, isProjectMember } from '../auth/access.js';
import { clientError, ErrorCode } from '../errors.js';
import type { ResourceKind, ResourceRecord } from '../resources/registry.js';
import { decodeCursor, type Cursor } from '../updates/cursor.js';
import { ID_PATTERN, ID_RULE } from '../ids.js';
import type { Context } from './builder.js';

/** Refuses an argument: BAD_USER_INPUT, with the argument named so a client can point at the field. */
export function badInput(argument: string, message: string): never {
  throw clientError(ErrorCode.BadUserInput, message, { argument });
}

/** Refuses what only admins may do: FORBIDDEN, saying what was refused. */
export function assertAdmin(context: Context, what: string): void {
  if (!isAdmin(context.viewer)) throw clientError(ErrorCode.Forbidden, `only admins may ${what}`);
}

/** Ids end up in Redis keys: anything else is refused before it gets near one. */
export function validId(value: string, argument: string): string {
  if (!ID_PATTERN.test(value)) badInput(argument, `${argument} must be ${ID_RULE}`);
  return value;
}

/**
 * A valid project id the viewer is a member of (or, with `admins`, any project for an admin):
 * FORBIDDEN for anyone else, saying which project.
 */
export function memberProject(context: Context, value: string, argument: string, admins = false): string {
  const projectId = validId(value, argument);
  if (!isProjectMember(context.viewer, projectId) && !(admins && isAdmin(context.viewer))) {
    throw clientError(ErrorCode.Forbidden, `you are not a member of project ${projectId}`);
  }
  return projectId;
}

export function validCursor(value: string | null | undefined, argument = 'after'): Cursor | null {
  if (value === null || value === undefined) return null;
  const cursor = decodeCursor(value);
  if (!cursor) badInput(argument, `${argument} is not a cursor this server issued`);
  return cursor;
}

/**
 * Where a subscription resumes: after the last event a reconnecting EventSource received
 * (`Last-Event-ID`, sent to the same URL, so always at or past the URL's own `after`), else after `after`.
 */
export function resumeCursor<C = Cursor>(
  context: Context,
  after: string | null | undefined,
  parse: (value: string | null | undefined, argument: string) => C | null = validCursor as never,
): C | null {
  return context.lastEventId === undefined ? parse(after, 'after') : parse(context.lastEventId, 'Last-Event-ID');
}

/**
 * Loads a resource the viewer may see: NOT_FOUND for an unknown id, FORBIDDEN for someone else's
 * (unless `adminsToo` and the viewer is an admin: operators retry anyone's jobs).
 */
export async function accessibleResource(
  context: Context,
  id: string,
  kind: ResourceKind | null,
  argument = 'id',
  adminsToo = false,
): Promise<ResourceRecord> {
  const record = await context.services.resources.get(validId(id, argument));
  if (!record || (kind !== null && record.kind !== kind)) {
    throw clientError(ErrorCode.NotFound, `no ${kind ?? 'job'} with id ${id}`);
  }
  if (!canAccess(context.viewer, record) && !(adminsToo && isAdmin(context.viewer))) {
    throw clientError(ErrorCode.Forbidden, `${record.kind} ${id} belongs to someone else`);
  }
  return record;
}
