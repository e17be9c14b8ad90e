import { SERVICE_KEY_ACTIONS, type ServiceKey, type ServiceKeyScope } from '../auth/service-keys.js';
import { clientError, ErrorCode } from '../errors.js';
import { builder } from './builder.js';
import { assertAdmin, badInput, validId } from './guards.js';

const MAX_NAME = 100;
const MAX_SCOPES = 20;

const ActionEnum = builder.enumType('ServiceKeyAction', {
  values: {
    PUBLISH_FILES: { description: 'Register files and append updates to their streams (`/v1/files`).' },
    PUBLISH_QUERIES: { description: 'Register queries and append updates to their streams (`/v1/queries`).' },
    SEND_NOTIFICATIONS: { description: 'Send notifications (`/v1/notifications`).' },
  } satisfies Record<(typeof SERVICE_KEY_ACTIONS)[number], { description: string }>,
});

const ScopeRef = builder.objectRef<ServiceKeyScope>('ServiceKeyScope').implement({
  description: 'One thing a service key may do.',
  fields: (t) => ({
    action: t.field({ type: ActionEnum, resolve: (scope) => scope.action }),
    projectId: t.id({
      nullable: true,
      description:
        'Only in this project: resources registered and appended to must be in it, notifications must target it. ' +
        'Null: anywhere.',
      resolve: (scope) => scope.projectId,
    }),
  }),
});

const ScopeInput = builder.inputType('ServiceKeyScopeInput', {
  fields: (t) => ({
    action: t.field({ type: ActionEnum, required: true }),
    projectId: t.id({ description: 'Restrict the action to this project; absent: anywhere.' }),
  }),
});

const ServiceKeyRef = builder.objectRef<ServiceKey>('ServiceKey').implement({
  description:
    "A service's credential for the HTTP publish endpoint (`Authorization: Bearer <secret>` on `/v1/...`). " +
    'Its secret is shown once, by `createServiceKey`, and stored only hashed.',
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    scopes: t.field({ type: [ScopeRef], resolve: (key) => key.scopes }),
    createdBy: t.exposeID('createdBy', { description: 'The admin who created it.' }),
    createdAt: t.field({ type: 'DateTime', resolve: (key) => key.createdAt }),
  }),
});

const CreatedRef = builder.objectRef<{ key: ServiceKey; secret: string }>('CreatedServiceKey').implement({
  fields: (t) => ({
    key: t.field({ type: ServiceKeyRef, resolve: (created) => created.key }),
    secret: t.exposeString('secret', {
      description: 'The bearer secret. Shown this once: Herald keeps only its SHA-256, so store it now.',
    }),
  }),
});

builder.queryField('serviceKeys', (t) =>
  t.field({
    type: [ServiceKeyRef],
    description: 'Admins only. Every live service key, oldest first, without secrets.',
    resolve: (_root, _args, context) => {
      assertAdmin(context, 'list service keys');
      return context.services.serviceKeys.list();
    },
  }),
);

builder.mutationField('createServiceKey', (t) =>
  t.field({
    type: CreatedRef,
    description:
      'Admins only. Creates a key a service publishes with over HTTP (`/v1/...`): its secret is in the answer ' +
      `and nowhere else. \`name\`: 1 to ${MAX_NAME} characters; \`scopes\`: 1 to ${MAX_SCOPES}.`,
    args: {
      name: t.arg.string({ required: true }),
      scopes: t.arg({ type: [ScopeInput], required: true }),
    },
    resolve: (_root, args, context) => {
      assertAdmin(context, 'create service keys');
      const name = args.name.trim();
      if (name.length === 0 || name.length > MAX_NAME) badInput('name', `name must be 1 to ${MAX_NAME} characters`);
      if (args.scopes.length === 0 || args.scopes.length > MAX_SCOPES) {
        badInput('scopes', `scopes must list 1 to ${MAX_SCOPES} scopes`);
      }
      const scopes = args.scopes.map((scope, i) => ({
        action: scope.action,
        projectId: scope.projectId == null ? null : validId(String(scope.projectId), `scopes.${i}.projectId`),
      }));
      return context.services.serviceKeys.create({ name, scopes, createdBy: context.viewer.id });
    },
  }),
);

builder.mutationField('revokeServiceKey', (t) =>
  t.boolean({
    description:
      'Admins only. Revokes a service key: every API instance refuses it from its next request on (401). ' +
      'NOT_FOUND when no live key has the id. Always true otherwise.',
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, { id }, context) => {
      assertAdmin(context, 'revoke service keys');
      if (!(await context.services.serviceKeys.revoke(String(id)))) {
        throw clientError(ErrorCode.NotFound, `no service key with id ${String(id)}`);
      }
      return true;
    },
  }),
);
