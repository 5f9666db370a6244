/**
 * The minimal player page: HLS through hls.js (or native HLS), HTTP-FLV through mpegts.js with
 * `?mode=flv`. The libraries load lazily from FLUX itself (`/api/streams/_player/…`), never a CDN.
 * A watchdog rebuilds the player when the picture stops (a camera outage ends the FLV response
 * and freezes the HLS playlist), so playback comes back with the camera. `window.fluxPlayer`
 * exposes counters for tests and benchmarks.
 */

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function playerPage(id: string, sig: string | undefined): string {
  const cfg = JSON.stringify({ id, sig: sig ?? null }).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escape(id)} · FLUX stream</title>
<style>html,body{margin:0;height:100%;background:#111;color:#ddd;font:14px system-ui,sans-serif}
video{width:100%;height:calc(100% - 2em);background:#000;display:block}#bar{height:2em;line-height:2em;padding:0 .6em}</style>
</head><body>
<video id="v" muted autoplay playsinline controls></video>
<div id="bar"><span id="mode"></span> · <span id="st">loading…</span></div>
<script>
(() => {
  const cfg = ${cfg};
  const params = new URLSearchParams(location.search);
  const mode = params.get('mode') === 'flv' ? 'flv' : params.get('mode') === 'vod' ? 'vod' : 'hls';
  const q = cfg.sig ? '?sig=' + encodeURIComponent(cfg.sig) : '';
  const base = '/api/streams/' + encodeURIComponent(cfg.id);
  const video = document.getElementById('v');
  const st = (t) => (document.getElementById('st').textContent = t);
  document.getElementById('mode').textContent = mode.toUpperCase();
  const state = (window.fluxPlayer = { mode, started: performance.now(), firstFrameMs: null, restarts: 0, errors: [] });
  const load = (file, global) => window[global] ? Promise.resolve(window[global]) : new Promise((ok, fail) => {
    const s = document.createElement('script');
    s.src = '/api/streams/_player/' + file;
    s.onload = () => ok(window[global]);
    s.onerror = () => fail(new Error('cannot load ' + file));
    document.head.appendChild(s);
  });
  let player = null;
  const teardown = () => {
    if (!player) return;
    try { player.destroy(); } catch (e) { /* already gone */ }
    player = null;
  };
  async function start() {
    teardown();
    if (mode === 'flv') {
      const mpegts = await load('mpegts.js', 'mpegts');
      const p = mpegts.createPlayer({ type: 'flv', isLive: true, url: base + '/live.flv' + q }, { enableStashBuffer: false, liveBufferLatencyChasing: true, lazyLoad: false });
      p.on(mpegts.Events.ERROR, (t, d) => { state.errors.push(String(t) + ':' + String(d)); schedule(); });
      p.on(mpegts.Events.LOADING_COMPLETE, () => schedule());
      p.attachMediaElement(video);
      p.load();
      video.play().catch(() => {});
      player = p;
    } else {
      const Hls = await load('hls.min.js', 'Hls');
      const range = new URLSearchParams();
      if (cfg.sig) range.set('sig', cfg.sig);
      for (const k of ['from', 'to']) if (params.get(k)) range.set(k, params.get(k));
      const url = mode === 'vod' ? base + '/recordings?' + range : base + '/hls/index.m3u8' + q;
      if (!Hls.isSupported() && video.canPlayType('application/vnd.apple.mpegurl')) { video.src = url; video.play().catch(() => {}); return; }
      // enableWorker false: hls.js's worker evaluates the whole library again before it transmuxes the
      // first segment, which cost a viewer of a live stream ~0.2–0.5 s of its first frame (docs/benchmarks.md
      // "Session 15"); one stream's transmuxing is cheap on the page's thread
      const h = new Hls({ liveSyncDurationCount: 2, manifestLoadingTimeOut: 25000, manifestLoadingMaxRetry: 0, lowLatencyMode: false, enableWorker: false });
      h.on(Hls.Events.ERROR, (e, d) => { if (d.fatal) { state.errors.push(d.type + ':' + d.details); schedule(); } });
      h.loadSource(url);
      h.attachMedia(video);
      h.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => {}));
      player = h;
      state.hls = h;
    }
  }
  let pending = null;
  function schedule() {
    if (pending) return;
    st('reconnecting…');
    pending = setTimeout(() => { pending = null; state.restarts++; start().catch((e) => { state.errors.push(String(e)); schedule(); }); }, 1000);
  }
  let lastTime = -1, still = 0;
  video.addEventListener('timeupdate', () => {
    if (state.firstFrameMs === null && video.currentTime > 0) state.firstFrameMs = Math.round(performance.now() - state.started);
  });
  setInterval(() => {
    if (video.currentTime !== lastTime) { lastTime = video.currentTime; still = 0; st('playing ' + video.currentTime.toFixed(1) + ' s'); return; }
    // 6 s without progress while playing, 25 s before the first frame (a cold start on a busy host)
    if (mode !== 'vod' && ++still >= (state.firstFrameMs === null ? 25 : 6)) { still = 0; schedule(); }
  }, 1000);
  start().catch((e) => { state.errors.push(String(e)); schedule(); });
})();
</script>
</body></html>
`;
}
