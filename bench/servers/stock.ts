/**
 * What a typical user builds: graphql-js, graphql-ws `useServer` and graphql-redis-subscriptions,
 * one `RedisPubSub.asyncIterator` per subscription and a FileUpdate type with eight fields, each
 * update executed and serialized for every subscriber.
 */
import {
  GraphQLBoolean,
  GraphQLEnumType,
  GraphQLFloat,
  GraphQLID,
  GraphQLInt,
  GraphQLNonNull,
  GraphQLObjectType,
  GraphQLScalarType,
  GraphQLSchema,
  GraphQLString,
} from 'graphql';
import { RedisPubSub } from 'graphql-redis-subscriptions';
import { useServer } from 'graphql-ws/use/ws';
import { Redis } from 'ioredis';
import { WebSocketServer } from 'ws';
import { baselineChannel } from '../shared.js';

const port = Number(process.env.PORT ?? 4200);
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const pubsub = new RedisPubSub({ publisher: new Redis(redisUrl), subscriber: new Redis(redisUrl) });

const JSONScalar = new GraphQLScalarType({ name: 'JSON', serialize: (value) => value });
const UpdateStatus = new GraphQLEnumType({
  name: 'UpdateStatus',
  values: { QUEUED: {}, PROCESSING: {}, COMPLETED: {}, FAILED: {}, CANCELLED: {} },
});

const FileUpdate = new GraphQLObjectType({
  name: 'FileUpdate',
  fields: {
    fileId: { type: new GraphQLNonNull(GraphQLID) },
    seq: { type: new GraphQLNonNull(GraphQLInt) },
    event: { type: new GraphQLNonNull(GraphQLString) },
    status: { type: new GraphQLNonNull(UpdateStatus) },
    progress: { type: GraphQLFloat },
    message: { type: GraphQLString },
    timestamp: { type: new GraphQLNonNull(GraphQLString) },
    data: { type: JSONScalar },
  },
});

const schema = new GraphQLSchema({
  query: new GraphQLObjectType({ name: 'Query', fields: { ok: { type: GraphQLBoolean, resolve: () => true } } }),
  subscription: new GraphQLObjectType({
    name: 'Subscription',
    fields: {
      fileProgress: {
        type: new GraphQLNonNull(FileUpdate),
        args: { fileId: { type: new GraphQLNonNull(GraphQLID) } },
        subscribe: (_root, args: { fileId: string }) => pubsub.asyncIterator(baselineChannel(args.fileId)),
        resolve: (payload: unknown) => payload,
      },
    },
  }),
});

const wss = new WebSocketServer({ port, host: '127.0.0.1', path: '/graphql' });
useServer({ schema }, wss);

function stop() {
  wss.close();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
