import type { Viewer } from '../auth/token.js';
import { builder } from './builder.js';

const ViewerRef = builder.objectRef<Viewer>('Viewer').implement({
  description: 'Who the access token says is calling.',
  fields: (t) => ({
    id: t.exposeID('id'),
    roles: t.exposeStringList('roles'),
    projects: t.exposeIDList('projects'),
  }),
});

builder.queryField('me', (t) => t.field({ type: ViewerRef, resolve: (_root, _args, context) => context.viewer }));
