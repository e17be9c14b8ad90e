import { openRoomStream, type PresenceEvent } from '../presence/room-stream.js';
import type { Room, Watcher } from '../presence/rooms.js';
import { builder, type Context } from './builder.js';
import { accessibleResource, badInput, memberProject } from './guards.js';

const PresenceTargetInput = builder.inputType('PresenceTarget', {
  description: 'A room: exactly one of projectId and resourceId.',
  fields: (t) => ({
    projectId: t.id({
      description: 'Members (and admins) only. Everyone watching projectProgress or any file or query of the project.',
    }),
    resourceId: t.id({
      description: 'A file or query id; whoever may see it. Everyone watching its fileProgress or queryProgress.',
    }),
  }),
});

/**
 * The room a target names, once the viewer may see it: BAD_USER_INPUT unless exactly one id is
 * given; for a project FORBIDDEN unless a member or an admin; for a resource NOT_FOUND or FORBIDDEN
 * as for its progress.
 */
async function roomOf(
  context: Context,
  target: { projectId?: string | number | null; resourceId?: string | number | null },
): Promise<Room> {
  const { projectId, resourceId } = target;
  if ((projectId === null || projectId === undefined) === (resourceId === null || resourceId === undefined)) {
    badInput('target', 'target must have exactly one of projectId and resourceId');
  }
  if (projectId !== null && projectId !== undefined) {
    return { kind: 'project', id: memberProject(context, String(projectId), 'target.projectId', true) };
  }
  const record = await accessibleResource(context, String(resourceId), null, 'target.resourceId');
  return { kind: 'resource', id: record.id };
}

const iso = (ms: number) => new Date(ms).toISOString();

const WatcherRef = builder.objectRef<Watcher>('Watcher').implement({
  description: 'Someone watching a project or a resource: they hold an open subscription to it, on any API instance.',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'The user.' }),
    since: t.field({
      type: 'DateTime',
      description: 'When they opened their first subscription of those they still hold.',
      resolve: (watcher) => iso(watcher.since),
    }),
  }),
});

const PresenceChangeEnum = builder.enumType('PresenceChange', {
  values: {
    PRESENT: { description: 'The first event of every subscription: who is there already (`user` is null).' },
    JOINED: { description: '`user` opened their first subscription to the room.' },
    LEFT: {
      description:
        '`user` closed their last one (or the API instance holding it stopped answering: within ' +
        'PRESENCE_TTL_MS + PRESENCE_HEARTBEAT_MS).',
    },
  } as const,
});

const PresenceEventRef = builder.objectRef<PresenceEvent>('PresenceEvent').implement({
  fields: (t) => ({
    change: t.expose('change', { type: PresenceChangeEnum }),
    user: t.expose('user', { type: WatcherRef, nullable: true, description: 'Who joined or left; null on PRESENT.' }),
    at: t.field({ type: 'DateTime', resolve: (event) => iso(event.at) }),
    watchers: t.expose('watchers', { type: [WatcherRef], description: 'Everyone in the room after this change, oldest first.' }),
  }),
});

builder.queryField('presence', (t) =>
  t.field({
    type: [WatcherRef],
    description: 'Who is watching the project or resource now, oldest first, over every API instance.',
    args: { target: t.arg({ type: PresenceTargetInput, required: true }) },
    resolve: async (_root, args, context) => {
      const { watchers } = await context.services.rooms.snapshot(await roomOf(context, args.target));
      return watchers;
    },
  }),
);

builder.subscriptionField('presenceChanged', (t) =>
  t.field({
    type: PresenceEventRef,
    description:
      'Who is there (PRESENT), then every JOINED and LEFT, each with everyone present after it. Never completes ' +
      'by itself; after a reconnect of the server to Redis it sends what changed meanwhile.',
    args: { target: t.arg({ type: PresenceTargetInput, required: true }) },
    subscribe: async (_root, args, context) => {
      const room = await roomOf(context, args.target);
      const { hub, config, rooms } = context.services;
      return openRoomStream(hub, { queueLimit: config.updates.subscriberQueueLimit }, rooms, room);
    },
    resolve: (event: PresenceEvent) => event,
  }),
);
