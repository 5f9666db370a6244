/**
 * Which topics the other nodes listen to, so that a publish nobody elsewhere subscribes to stays on
 * this node instead of crossing Redis (emitter.ts). A device's uplink usually has no subscriber at
 * all: without this every uplink cost a `PUBLISH`, its msgpack encoding and a Redis round trip
 * before aedes read the device's next packets (docs/cluster.md, "Delivery across nodes").
 *
 * Each node keeps the MQTT filters its emitter listens to (client subscriptions and aedes' internal
 * ones) in the hash `<prefix>interest:<node>` (field = filter), listed in the set
 * `<prefix>interest:nodes`, and announces every change on `<prefix>interest` (through
 * mqemitter-redis, like any cross-node message). A new filter is written and announced *before*
 * `add()` calls back, which is before aedes sends the SUBACK: Redis has queued the notice to every
 * other node before the subscriber can know it is subscribed.
 *
 * Safe side: while this node does not know the others' filters (starting, after its subscriber
 * connection to Redis came back, Redis restarted empty) every publish goes to Redis, as before.
 * A filter that matches more than MQTT would (a `+` or `#` at a `$` topic) only costs a publish.
 * The hash expires after 10 refresh periods unless its node renews it, so a killed node's filters go
 * away by themselves; until then they only cost publishes.
 */
import type { Redis } from 'ioredis';

type Packet = Record<string, unknown> & { topic: string };

/** the part of mqemitter-redis this uses: notices travel as its messages */
export interface NoticeBus {
  on(topic: string, listener: (packet: Packet, done: () => void) => void, done?: () => void): unknown;
  emit(packet: Packet, done?: (err?: Error) => void): void;
}

export interface InterestOptions {
  nodeId: string;
  /** FLUX_REDIS_PREFIX */
  prefix: string;
  /** commands (HSET, PEXPIRE…); the connection mqemitter-redis publishes on, so a notice follows its write */
  pub: Redis;
  /** the subscriber connection (its reconnections make this node's view unknown until reloaded) */
  sub: Redis;
  bus: NoticeBus;
  /** renewal of this node's hash and re-reading of the others' (the heartbeat period) */
  refreshMs: number;
  onFailure(err: Error): void;
}

export interface Interest {
  /** this node listens to `filter` (once more); `done` once the other nodes can know it */
  add(filter: string, done: () => void): void;
  remove(filter: string): void;
  /** whether a node other than this one may have a listener for `topic` (true while not known) */
  elsewhere(topic: string): boolean;
  /** whether the other nodes' filters are known now (tests, health) */
  known(): boolean;
  close(): void;
}

interface Notice {
  node: string;
  op: 'add' | 'del' | 'reset';
  filter?: string;
}

/** MQTT filters → how many other nodes hold each; `matches(topic)` walks `+` and `#` too. */
class FilterTrie {
  private root: TrieNode = { children: new Map(), count: 0 };

  add(filter: string): void {
    let n = this.root;
    for (const level of filter.split('/')) {
      let c = n.children.get(level);
      if (!c) n.children.set(level, (c = { children: new Map(), count: 0 }));
      n = c;
    }
    n.count++;
  }

  remove(filter: string): void {
    const path: TrieNode[] = [this.root];
    const levels = filter.split('/');
    for (const level of levels) {
      const c = path[path.length - 1]!.children.get(level);
      if (!c) return;
      path.push(c);
    }
    const end = path[path.length - 1]!;
    if (end.count > 0) end.count--;
    for (let i = levels.length; i > 0; i--) {
      const n = path[i]!;
      if (n.count > 0 || n.children.size > 0) break;
      path[i - 1]!.children.delete(levels[i - 1]!);
    }
  }

  matches(topic: string): boolean {
    return match(this.root, topic.split('/'), 0);
  }
}

interface TrieNode {
  children: Map<string, TrieNode>;
  count: number;
}

function match(n: TrieNode, levels: string[], i: number): boolean {
  // `#` matches the rest, including no level at all (`a/#` matches `a`)
  if (n.children.get('#')?.count) return true;
  if (i === levels.length) return n.count > 0;
  const exact = n.children.get(levels[i]!);
  if (exact && match(exact, levels, i + 1)) return true;
  const one = n.children.get('+');
  return !!one && match(one, levels, i + 1);
}

export function createInterest(opts: InterestOptions): Interest {
  const { nodeId, pub } = opts;
  const channel = `${opts.prefix}interest`;
  const nodesKey = `${opts.prefix}interest:nodes`;
  const keyOf = (node: string) => `${opts.prefix}interest:${node}`;
  const ttlMs = opts.refreshMs * 10;
  /** this node's filters and how many listeners each */
  const own = new Map<string, number>();
  /** the other nodes' filters */
  const others = new Map<string, Set<string>>();
  let trie = new FilterTrie();
  let isKnown = false;
  /** notices that arrived while the others' hashes were being read: applied on top of what was read */
  let buffered: Notice[] | undefined;
  let closed = false;
  let ticks = 0;
  /** after a reconnection, the others' hashes are read no earlier than this (they are being rewritten) */
  let readAfter = 0;
  // a 'ready' after the first is a reconnection
  let subReadyOnce = opts.sub.status === 'ready';
  let pubReadyOnce = opts.pub.status === 'ready';

  const announce = (notice: Notice, done?: () => void) =>
    opts.bus.emit({ topic: channel, payload: Buffer.from(JSON.stringify(notice)) }, (err) => {
      if (err) opts.onFailure(err);
      done?.();
    });

  const addOther = (node: string, filter: string) => {
    let set = others.get(node);
    if (!set) others.set(node, (set = new Set()));
    if (set.has(filter)) return;
    set.add(filter);
    trie.add(filter);
  };
  const apply = (n: Notice) => {
    if (n.node === nodeId) return;
    if (buffered) buffered.push(n);
    if (n.op === 'add' && n.filter !== undefined) addOther(n.node, n.filter);
    else if (n.op === 'del' && n.filter !== undefined) {
      if (others.get(n.node)?.delete(n.filter)) trie.remove(n.filter);
    } else if (n.op === 'reset') void readNode(n.node);
  };

  /**
   * Re-reads one node's hash (it announced a reset: rewritten after a Redis restart, or gone). Added
   * to what is known, not replacing it: an `add` notice handled while the read travelled must stay;
   * a filter it dropped meanwhile stays until the next full reload (a publish too many, no loss).
   */
  async function readNode(node: string): Promise<void> {
    try {
      const filters = await pub.hkeys(keyOf(node));
      if (!filters.length) {
        for (const f of others.get(node) ?? []) trie.remove(f);
        others.delete(node);
      }
      for (const f of filters) addOther(node, f);
    } catch (err) {
      isKnown = false;
      opts.onFailure(err as Error);
    }
  }

  /** reads every other node's filters anew */
  async function reload(): Promise<void> {
    if (closed || buffered || opts.sub.status !== 'ready' || Date.now() < readAfter) return;
    buffered = [];
    try {
      const nodes = (await pub.smembers(nodesKey)).filter((n) => n !== nodeId);
      const read = pub.pipeline();
      for (const n of nodes) read.hkeys(keyOf(n));
      const replies = nodes.length ? ((await read.exec()) ?? []) : [];
      const fresh = new Map<string, Set<string>>();
      const gone: string[] = [];
      nodes.forEach((n, i) => {
        const [err, filters] = replies[i] ?? [new Error('no reply'), null];
        if (err) throw err;
        if ((filters as string[]).length) fresh.set(n, new Set(filters as string[]));
        else gone.push(n);
      });
      const notices = buffered;
      buffered = undefined;
      others.clear();
      trie = new FilterTrie();
      for (const [n, set] of fresh) for (const f of set) addOther(n, f);
      for (const n of notices) apply(n);
      isKnown = true;
      // a node whose hash expired (killed) leaves the index
      if (gone.length) await pub.srem(nodesKey, ...gone);
    } catch (err) {
      buffered = undefined;
      isKnown = false;
      opts.onFailure(err as Error);
    }
  }

  /** (re)writes this node's hash whole and tells the others to read it again */
  async function rewrite(): Promise<void> {
    const key = keyOf(nodeId);
    const m = pub.multi().del(key).sadd(nodesKey, nodeId);
    if (own.size) m.hset(key, Object.fromEntries([...own.keys()].map((f) => [f, '1']))).pexpire(key, ttlMs);
    await m.exec();
    announce({ node: nodeId, op: 'reset' });
  }

  async function refresh(): Promise<void> {
    if (closed) return;
    if (own.size && (await pub.pexpire(keyOf(nodeId), ttlMs)) === 0) await rewrite();
    if (!isKnown || ++ticks % 10 === 0) await reload();
  }

  const timer = setInterval(() => refresh().catch((err: Error) => opts.onFailure(err)), opts.refreshMs);
  timer.unref();

  opts.bus.on(channel, (packet, done) => {
    try {
      apply(JSON.parse(String(packet.payload)) as Notice);
    } catch {
      // not a notice of this version: ignored
    }
    done();
  }, () => void reload());
  // a subscriber connection that is down misses notices, and one that came back may have (Redis
  // may even have restarted empty): publish everything until the others' filters are read again
  opts.sub.on('close', () => {
    isKnown = false;
  });
  opts.sub.on('ready', () => {
    if (!subReadyOnce) return void (subReadyOnce = true);
    isKnown = false;
    // the others rewrite their hashes as their own connections come back: read after a period
    readAfter = Date.now() + opts.refreshMs;
    setTimeout(() => void reload(), opts.refreshMs + 10).unref();
  });
  opts.pub.on('ready', () => {
    if (!pubReadyOnce) return void (pubReadyOnce = true);
    rewrite().catch((err: Error) => opts.onFailure(err));
  });

  return {
    add(filter, done) {
      const n = own.get(filter) ?? 0;
      own.set(filter, n + 1);
      if (n > 0) return done();
      const key = keyOf(nodeId);
      pub
        .multi()
        .hset(key, filter, '1')
        .pexpire(key, ttlMs)
        .sadd(nodesKey, nodeId)
        .exec()
        .then(
          () => announce({ node: nodeId, op: 'add', filter }, done),
          (err: Error) => {
            // Redis unreachable: the subscription holds here; it is written again when Redis is back (rewrite)
            opts.onFailure(err);
            done();
          },
        );
    },
    remove(filter) {
      const n = own.get(filter);
      if (!n) return;
      if (n > 1) return void own.set(filter, n - 1);
      own.delete(filter);
      pub.hdel(keyOf(nodeId), filter).then(
        () => announce({ node: nodeId, op: 'del', filter }),
        (err: Error) => opts.onFailure(err),
      );
    },
    elsewhere: (topic) => !isKnown || trie.matches(topic),
    known: () => isKnown,
    close() {
      closed = true;
      clearInterval(timer);
      if (pub.status !== 'ready') return;
      // before mqemitter-redis' QUIT on the same connection
      pub.multi().del(keyOf(nodeId)).srem(nodesKey, nodeId).exec().catch(() => undefined);
      announce({ node: nodeId, op: 'reset' });
    },
  };
}
