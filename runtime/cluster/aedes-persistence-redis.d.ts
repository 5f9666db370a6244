/** aedes-persistence-redis 11 ships no types; FLUX passes an ioredis connection and reads nothing back but the instance. */
declare module 'aedes-persistence-redis' {
  import type { Redis } from 'ioredis';
  interface RedisPersistenceOptions {
    conn?: Redis;
    maxSessionDelivery?: number;
    packetTTL?: (packet: unknown) => number;
  }
  export default function redisPersistence(opts?: RedisPersistenceOptions): unknown;
}
