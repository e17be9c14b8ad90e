export { freePort, startRedisServer, type RedisServer } from '../../src/dev/redis-server.js';
