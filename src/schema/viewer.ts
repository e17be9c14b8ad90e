import type { Viewer } from '../auth/token.js';
import { builder } from './builder.js';

export const ViewerRef = builder.objectRef<Viewer>('Viewer').implement({
  description: 'Who the access token says is calling.',
  fields: (t) => ({
    id: t.exposeID('id'),
    roles: t.exposeStringList('roles'),
    projects: t.exposeIDList('projects'),
    expiresAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'When the token stops being valid (its `exp`); null when it has none. Refresh before then.',
      resolve: (viewer) => (viewer.expiresAt === null ? null : new Date(viewer.expiresAt * 1000)),
    }),
  }),
});

builder.queryField('me', (t) => t.field({ type: ViewerRef, resolve: (_root, _args, context) => context.viewer }));
