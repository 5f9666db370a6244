/**
 * The durable uplink log: every accepted uplink is appended before it is acknowledged, processed
 * from the log's order, and marked handled once it has left the flows. On restart the entries past
 * the handled watermark are processed again (docs/storage.md "Uplink log").
 *
 * Appends are group-committed: all appends of one event-loop turn go out in one write (and one
 * fdatasync with `fsync: 'always'`), on libuv's thread pool, so the main thread never waits on
 * the disk. (A synchronous write into the page cache costs less CPU, but on a busy disk it stalled
 * the main thread for 58 ms once in 135 groups.) While a group is being written, the next one gathers.
 *
 * Only a group with an append someone acknowledges (`sync`) waits for the fdatasync. One of unacknowledged
 * appends alone (MQTT QoS 0, Modbus polls) is written and synced with the next synced group, or
 * within SYNC_EVERY_MS: at 15k QoS 0 uplinks a second that is ~2 instead of ~500 fdatasyncs a second
 * (4 µs of CPU per uplink, and a gateway's flash written that much less often; docs/storage.md "Uplink log").
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { encodeRecordAt, type LogRecord } from './record.ts';
import { LogRefusedError, type AppendCallback, type UplinkLog, type UplinkLogOptions } from './types.ts';
import { readRecords, scanRecords } from './reads.ts';
import { emptySegment, note, openSegments, removeSegment, scanSegment, seal, type SegmentInfo } from './segments.ts';

/** one group commit's buffer; a busier turn grows it for that group */
const GROUP_BUFFER = 256 * 1024;

/** how long written, unacknowledged appends may wait for an fdatasync (`fsync: 'always'`) */
export const SYNC_EVERY_MS = 1000;
/**
 * A group of unacknowledged appends alone gathers this long after the last write began: nobody waits
 * for it, and each write costs the main thread its dispatch and callback (with the fdatasync gone,
 * groups came every turn: ~800 a second at 15k QoS 0 uplinks a second).
 */
const GATHER_MS = 5;

export function createUplinkLog(opts: UplinkLogOptions): UplinkLog {
  // Only sealed segments can be deleted, so a segment must be well under the budget: otherwise a full
  // log's one open segment never seals and the log stays full after the flows caught up.
  const segmentBytes =
    opts.segmentBytes ?? Math.min(64 * 1024 * 1024, Math.floor(opts.maxBytes / 4), Math.max(64 * 1024, Math.floor(opts.maxBytes / 8)));
  const watermarkFile = path.join(opts.dir, 'handled');
  let segments: SegmentInfo[] = [];
  let current: SegmentInfo;
  let fd = -1;
  let lastSeq = 0;
  let handledSeq = 0;
  let startSeq = 0;
  const doneAhead = new Set<number>();
  // The gathering group: its records encoded back to back in `pending`, their callbacks in order
  // (their seqs run on from `groupFirstSeq`). A group in flight keeps its buffer; `spare` is the
  // other one, back once that write finished.
  let pending: Buffer = Buffer.allocUnsafeSlow(GROUP_BUFFER);
  let spare: Buffer | null = Buffer.allocUnsafeSlow(GROUP_BUFFER);
  let queuedBytes = 0;
  let queued: AppendCallback[] = [];
  let groupFirstSeq = 0;
  let groupMinTs = Infinity;
  let groupMaxTs = -Infinity;
  /** the gathering group has an append someone waits for (fdatasync before its callbacks) */
  let groupSync = false;
  /** bytes written and not yet fdatasynced; `syncTimer` syncs them within SYNC_EVERY_MS */
  let unsynced = false;
  let syncDue = false;
  let syncTimer: NodeJS.Timeout | undefined;
  /** when the last write began, and the timer of a group of unacknowledged appends gathering */
  let lastWriteAt = -Infinity;
  let gatherTimer: NodeJS.Timeout | undefined;
  let flushing = false;
  let totalBytes = 0;
  let full = false;
  let closed = false;
  let idle: (() => void)[] = [];
  let savedWatermark = 0;
  let watermarkTimer: NodeJS.Timeout | undefined;
  let retentionTimer: NodeJS.Timeout | undefined;
  const counts = { appends: 0, groups: 0, syncs: 0, refused: 0, lost: 0 };

  const openCurrent = (firstSeq: number) => {
    current = emptySegment(opts.dir, firstSeq);
    segments.push(current);
    fd = fs.openSync(current.file, 'a');
    if (opts.fsync === 'always') fsyncDir();
  };
  const fsyncDir = () => {
    const d = fs.openSync(opts.dir, 'r');
    try {
      fs.fsyncSync(d);
    } finally {
      fs.closeSync(d);
    }
  };

  /** Deletes handled segments past the retention or the budget, oldest first; answers whether `need` more bytes fit. */
  const evict = (need: number): boolean => {
    const oldest = Date.now() - opts.retentionMs;
    while (segments.length > 1) {
      const s = segments[0]!;
      if (!s.sealed || s.lastSeq > handledSeq) break;
      if (s.maxTs >= oldest && totalBytes + need <= opts.maxBytes) break;
      segments.shift();
      totalBytes -= s.bytes;
      void removeSegment(s);
    }
    return totalBytes + need <= opts.maxBytes;
  };

  const finishGroup = (group: AppendCallback[], firstSeq: number, err: Error | null) => {
    for (let i = 0; i < group.length; i++) {
      if (err) {
        // not in the log: nothing will process it, and its seq must not hold the watermark
        self.handled(firstSeq + i);
        group[i]!(err, firstSeq + i);
      } else group[i]!(null, firstSeq + i);
    }
  };

  const synced = () => {
    counts.syncs++;
    unsynced = false;
    syncDue = false;
    clearTimeout(syncTimer);
    syncTimer = undefined;
  };
  const syncSoon = () => {
    unsynced = true;
    syncTimer ??= setTimeout(() => {
      syncTimer = undefined;
      syncDue = true;
      if (!flushing) {
        flushing = true;
        flush();
      }
    }, SYNC_EVERY_MS);
  };

  /** A group of unacknowledged appends that is gathering goes at once (an acknowledged append came, or close). */
  const sendGathered = () => {
    if (!gatherTimer) return;
    clearTimeout(gatherTimer);
    gatherTimer = undefined;
    setImmediate(flush);
  };

  const flush = () => {
    gatherTimer = undefined;
    if (queued.length > 0 && !groupSync && !syncDue && !closed && queuedBytes < GROUP_BUFFER / 2) {
      const wait = lastWriteAt + GATHER_MS - performance.now();
      if (wait > 0) {
        gatherTimer = setTimeout(flush, wait);
        return;
      }
    }
    if (queued.length === 0 && syncDue && unsynced && fd >= 0) {
      // unacknowledged appends written a while ago, and no group since to sync them with; a failed
      // fdatasync leaves them unsynced, to be tried again within SYNC_EVERY_MS
      fs.fdatasync(fd, (err) => {
        if (err) {
          syncDue = false;
          syncSoon();
        } else synced();
        flush();
      });
      return;
    }
    if (queued.length === 0) {
      syncDue = false;
      flushing = false;
      const w = idle;
      idle = [];
      for (const f of w) f();
      return;
    }
    const group = queued, bytes = queuedBytes, firstSeq = groupFirstSeq, minTs = groupMinTs, maxTs = groupMaxTs;
    const sync = opts.fsync === 'always' && (groupSync || syncDue);
    const buffer = pending;
    const data = buffer.subarray(0, bytes);
    pending = spare ?? Buffer.allocUnsafeSlow(GROUP_BUFFER);
    spare = null;
    queued = [];
    queuedBytes = 0;
    groupMinTs = Infinity;
    groupMaxTs = -Infinity;
    groupSync = false;
    if (current.bytes > 0 && current.bytes + bytes > segmentBytes) {
      const old = current, oldFd = fd;
      void seal(old).catch(() => {});
      // what unacknowledged appends left unsynced in it is synced before the file is let go
      if (unsynced && opts.fsync === 'always') fs.fdatasync(oldFd, () => fs.close(oldFd, () => {}));
      else fs.close(oldFd, () => {});
      unsynced = false;
      openCurrent(firstSeq);
    }
    const seg = current, at = seg.bytes, writeFd = fd;
    lastWriteAt = performance.now();
    const written = (err: NodeJS.ErrnoException | null) => {
      if (buffer.length === GROUP_BUFFER) spare = buffer;
      if (err) {
        // keep the file whole: cut whatever part of the group reached it
        fs.ftruncate(writeFd, at, () => {
          counts.refused += group.length;
          finishGroup(group, firstSeq, new LogRefusedError('log_write_failed', `uplink log: write failed (${err.code ?? err.message})`));
          flush();
        });
        return;
      }
      note(seg, firstSeq + group.length - 1, minTs, bytes);
      if (maxTs > seg.maxTs) seg.maxTs = maxTs;
      totalBytes += bytes;
      counts.groups++;
      if (sync) synced();
      else if (opts.fsync === 'always') syncSoon();
      finishGroup(group, firstSeq, null);
      flush();
    };
    const writeFrom = (off: number) =>
      fs.write(writeFd, data, off, data.length - off, null, (err, n) => {
        if (!err && off + n < data.length) return writeFrom(off + n); // a short write: the rest
        if (err || !sync) written(err);
        else fs.fdatasync(writeFd, written);
      });
    writeFrom(0);
  };

  const saveWatermark = async () => {
    if (handledSeq === savedWatermark) return;
    const at = handledSeq;
    const tmp = `${watermarkFile}.tmp`;
    await fsp.writeFile(tmp, String(at));
    await fsp.rename(tmp, watermarkFile);
    savedWatermark = at;
  };

  const self: UplinkLog = {
    async open() {
      const opened = await openSegments(opts.dir);
      segments = opened.segments;
      totalBytes = segments.reduce((a, s) => a + s.bytes, 0);
      lastSeq = segments.length ? segments[segments.length - 1]!.lastSeq : 0;
      try {
        handledSeq = Math.min(lastSeq, Number(await fsp.readFile(watermarkFile, 'utf8')) || 0);
      } catch {
        handledSeq = segments.length ? segments[0]!.firstSeq - 1 : 0;
      }
      savedWatermark = handledSeq;
      startSeq = lastSeq;
      const last = segments[segments.length - 1];
      if (last && !last.sealed && last.bytes < segmentBytes) {
        current = last;
        fd = fs.openSync(current.file, 'a');
      } else {
        if (last && !last.sealed) await seal(last);
        openCurrent(lastSeq + 1);
      }
      watermarkTimer = setInterval(() => void saveWatermark().catch(() => {}), 250);
      watermarkTimer.unref();
      retentionTimer = setInterval(() => {
        full = !evict(0);
      }, 10_000);
      retentionTimer.unref();
      return { unhandled: lastSeq - handledSeq, truncatedBytes: opened.truncatedBytes, skippedBytes: opened.skippedBytes };
    },

    append(input, cb, sync = true) {
      if (closed) {
        queueMicrotask(() => cb(new LogRefusedError('log_write_failed', 'uplink log: closed'), 0));
        return 0;
      }
      const seq = lastSeq + 1;
      let end = encodeRecordAt(input, seq, pending, queuedBytes);
      if (end < 0) {
        // a group larger than the buffer: grow this one (a big group is rare; it is not kept as spare)
        const grown = Buffer.allocUnsafeSlow(Math.max(pending.length * 2, queuedBytes - end));
        pending.copy(grown, 0, 0, queuedBytes);
        pending = grown;
        end = encodeRecordAt(input, seq, pending, queuedBytes);
      }
      const size = end - queuedBytes;
      if (totalBytes + queuedBytes + size > opts.maxBytes && !evict(queuedBytes + size)) {
        full = true;
        counts.refused++;
        queueMicrotask(() => cb(new LogRefusedError('log_full', `uplink log: full (FLUX_RAW_MAX_BYTES=${opts.maxBytes}; unprocessed uplinks fill it)`), 0));
        return 0;
      }
      full = false;
      lastSeq = seq;
      counts.appends++;
      if (queued.length === 0) groupFirstSeq = seq;
      queued.push(cb);
      queuedBytes = end;
      if (sync) {
        groupSync = true;
        // a group that was gathering without hurry goes now: someone waits for this one
        sendGathered();
      }
      if (input.ts < groupMinTs) groupMinTs = input.ts;
      if (input.ts > groupMaxTs) groupMaxTs = input.ts;
      if (!flushing) {
        flushing = true;
        setImmediate(flush);
      }
      return seq;
    },

    appendAsync(input) {
      return new Promise((resolve, reject) => self.append(input, (err, seq) => (err ? reject(err) : resolve(seq))));
    },

    handled(seq) {
      if (seq <= handledSeq) return;
      if (seq !== handledSeq + 1) {
        doneAhead.add(seq);
        return;
      }
      handledSeq = seq;
      while (doneAhead.size && doneAhead.delete(handledSeq + 1)) handledSeq++;
    },

    async *unhandled() {
      const upTo = startSeq;
      // Entries a damaged block took (segments.ts `recordsOf` skips them): nothing will process them,
      // so they are let go, or the watermark would stop below them and no segment be deleted again.
      const lose = (from: number, to: number) => {
        for (let seq = Math.max(from, handledSeq + 1); seq <= Math.min(to, upTo); seq++) {
          if (doneAhead.has(seq)) continue;
          counts.lost++;
          self.handled(seq);
        }
      };
      for (const seg of [...segments]) {
        if (seg.lastSeq <= handledSeq || seg.firstSeq > upTo) continue;
        const found: LogRecord[] = [];
        let next = seg.firstSeq;
        await scanSegment(seg.file, (r) => {
          if (r.seq > next) lose(next, r.seq - 1);
          next = r.seq + 1;
          if (r.seq > handledSeq && r.seq <= upTo && !doneAhead.has(r.seq)) found.push(r);
        });
        if (next <= seg.lastSeq) lose(next, seg.lastSeq);
        yield* found;
      }
    },

    read: (q) => readRecords(segments, q),

    scan: (q) => scanRecords(segments, q),

    stats: () => ({
      segments: segments.length,
      bytes: totalBytes,
      lastSeq,
      handledSeq,
      unhandled: lastSeq - handledSeq,
      appends: counts.appends,
      groups: counts.groups,
      syncs: counts.syncs,
      refused: counts.refused,
      lost: counts.lost,
      full,
    }),

    async close() {
      if (closed) return;
      closed = true;
      sendGathered();
      if (flushing) await new Promise<void>((r) => idle.push(r));
      clearInterval(watermarkTimer);
      clearInterval(retentionTimer);
      clearTimeout(syncTimer);
      await saveWatermark().catch(() => {});
      if (fd >= 0 && unsynced && opts.fsync === 'always') {
        fs.fdatasyncSync(fd);
        synced();
      }
      if (fd >= 0) fs.closeSync(fd);
      fd = -1;
    },
  };
  return self;
}
