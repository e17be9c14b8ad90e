import { builder } from './builder.js';

/** Where a page of a connection ends, as every paginated list (notifications, jobs) says it. */
export interface PageInfo {
  hasNextPage: boolean;
  endCursor: string | null;
}

export const PageInfoRef = builder.objectRef<PageInfo>('PageInfo').implement({
  fields: (t) => ({
    hasNextPage: t.exposeBoolean('hasNextPage'),
    endCursor: t.exposeString('endCursor', {
      nullable: true,
      description: 'Pass as `after` for the next page; null when the page is empty.',
    }),
  }),
});
