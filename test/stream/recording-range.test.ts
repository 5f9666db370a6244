/**
 * A recorded range is listed from the segment names that can overlap it: a stream kept for months
 * holds millions of segments, and stat'ing every one on each playlist request (any viewer may ask)
 * blocked FLUX's event loop for seconds (5 s for 200,000 segments: the API, MQTT and polling stood still).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from '../helpers/flux-process.ts';
import { listSegments, vodPlaylist } from '../../runtime/stream/recording.ts';

describe('recordings: a range reads only the segments that can overlap it', function () {
  it('stats a dozen of 2,000 segments for one hour, and the playlist is the same', function () {
    const dir = tempDir('flux-rec-');
    fs.mkdirSync(path.join(dir, 'rec'));
    const first = 1_700_000_000; // s; one 10 s segment every 10 minutes, about 14 days
    for (let i = 0; i < 2000; i++) {
      const start = first + i * 600;
      const file = path.join(dir, 'rec', `${start}.ts`);
      fs.writeFileSync(file, 'x');
      fs.utimesSync(file, start + 10, start + 10);
    }
    const from = (first + 1000 * 600) * 1000;
    const to = from + 3_600_000;
    const now = Date.now();
    // counted on the module object recording.ts calls through
    const writable = fs as unknown as { statSync: typeof fs.statSync };
    const statSync = fs.statSync;
    let stats = 0;
    writable.statSync = ((...args: Parameters<typeof statSync>) => {
      stats++;
      return statSync(...args);
    }) as typeof statSync;
    let ranged: ReturnType<typeof listSegments>;
    try {
      ranged = listSegments(dir, 'cam', { from, to });
    } finally {
      writable.statSync = statSync;
    }
    assert.ok(stats <= 20, `${stats} segments stat'ed for one hour`);
    const all = vodPlaylist(listSegments(dir, 'cam'), from, to, (n) => n, now);
    const some = vodPlaylist(ranged, from, to, (n) => n, now);
    assert.equal(some.count, 6);
    assert.equal(some.playlist, all.playlist);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
