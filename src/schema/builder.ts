import SchemaBuilder from '@pothos/core';
import type { Viewer } from '../auth/token.js';
import type { Config } from '../config.js';
import type { DocumentStore } from '../jobs/documents.js';
import type { JobControl } from '../jobs/control.js';
import type { ResourceRegistry } from '../jobs/resources.js';
import type { NotificationStore } from '../notifications/store.js';
import type { PresenceRegistry } from '../presence/registry.js';
import type { UpdateHub } from '../updates/hub.js';
import type { UpdateStore } from '../updates/store.js';

/** What resolvers reach: the stores, never Redis connections or the transport. */
export interface Services {
  config: Config;
  store: UpdateStore;
  hub: UpdateHub;
  resources: ResourceRegistry;
  documents: DocumentStore;
  jobs: JobControl;
  notifications: NotificationStore;
  presence: PresenceRegistry;
}

/** Every operation runs for an authenticated viewer: the transport refuses anyone else. */
export interface Context {
  viewer: Viewer;
  services: Services;
}

export const builder = new SchemaBuilder<{
  Context: Context;
  DefaultFieldNullability: false;
  Scalars: {
    DateTime: { Input: string; Output: string | Date };
    JSON: { Input: unknown; Output: unknown };
    File: { Input: File; Output: never };
  };
}>({
  defaultFieldNullability: false,
});

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});
