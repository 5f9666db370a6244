/**
 * Video wall: a grid of the camera streams (`/api/streams`), each with its status, a snapshot and a
 * live player. hls.js and mpegts.js are separate chunks loaded only when a player starts.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, blob, get, session } from '../api.ts';
import { t, useLang } from '../i18n.ts';
import { Card, Empty, ErrorBox, useAsync, useInterval } from '../ui.tsx';

interface Stream {
  id: string;
  name?: string;
  status?: string;
  device_id?: string | null;
  error?: string | null;
}

function Snapshot(p: { id: string }) {
  const [src, setSrc] = useState<string | null>(null);
  const [failed, setFailed] = useState(false);
  const load = () =>
    blob(`/streams/${encodeURIComponent(p.id)}/snapshot.jpg`).then(
      (b) => {
        setFailed(false);
        setSrc((old) => {
          if (old) URL.revokeObjectURL(old);
          return URL.createObjectURL(b);
        });
      },
      () => setFailed(true),
    );
  useEffect(() => {
    void load();
  }, [p.id]);
  useInterval(load, 15_000);
  if (failed && !src) return <div class="snapshot none">{t('no snapshot')}</div>;
  return src ? <img class="snapshot" src={src} alt={t('snapshot of {id}', { id: p.id })} /> : <div class="snapshot none">…</div>;
}

function Player(p: { id: string; onStop(): void }) {
  const video = useRef<HTMLVideoElement>(null);
  const [error, setError] = useState('');
  useEffect(() => {
    let destroy = () => {};
    const token = session.value?.token ?? '';
    const base = `/api/streams/${encodeURIComponent(p.id)}`;
    (async () => {
      const v = video.current!;
      const { default: Hls } = await import('hls.js');
      if (Hls.isSupported()) {
        const hls = new Hls({ lowLatencyMode: true, xhrSetup: (xhr) => xhr.setRequestHeader('authorization', `Bearer ${token}`) });
        hls.on(Hls.Events.ERROR, (_e, d) => d.fatal && setError(`${d.type}: ${d.details}`));
        hls.loadSource(`${base}/hls/index.m3u8`);
        hls.attachMedia(v);
        destroy = () => hls.destroy();
      } else {
        const mpegts = (await import('mpegts.js')).default;
        const player = mpegts.createPlayer({ type: 'flv', isLive: true, url: `${location.origin}${base}/live.flv` }, { headers: { authorization: `Bearer ${token}` } } as never);
        player.attachMediaElement(v);
        player.load();
        destroy = () => player.destroy();
      }
      v.muted = true;
      void v.play().catch(() => undefined);
    })().catch((err: Error) => setError(err.message));
    return () => destroy();
  }, [p.id]);
  return (
    <div class="player">
      <video ref={video} muted playsInline controls />
      {error && <div class="error">{error}</div>}
      <button type="button" class="small" onClick={p.onStop}>
        {t('Stop')}
      </button>
    </div>
  );
}

export function Video() {
  useLang();
  const streams = useAsync(async (s) => {
    try {
      const r = await get<{ items: Stream[] } | Stream[]>('/streams', s);
      return Array.isArray(r) ? r : r.items;
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return null;
      throw err;
    }
  }, []);
  useInterval(streams.reload, 10_000);
  const [playing, setPlaying] = useState<string[]>([]);
  const list = streams.data;
  return (
    <div class="page">
      <h1>{t('Video wall')}</h1>
      <ErrorBox error={streams.error} />
      {list === null || (list && list.length === 0) ? (
        <Empty>{list === null ? t('No streams: this FLUX has no camera streams (/api/streams is not available).') : t('No streams yet: add a camera with POST /api/streams.')}</Empty>
      ) : (
        <div class="wall">
          {list?.map((s) => (
            <Card key={s.id} title={s.name || s.id} actions={<span class={`status status-${s.status ?? 'unknown'}`}>{t(s.status ?? 'unknown')}</span>}>
              {playing.includes(s.id) ? (
                <Player id={s.id} onStop={() => setPlaying(playing.filter((x) => x !== s.id))} />
              ) : (
                <div class="poster" onClick={() => setPlaying([...playing, s.id])}>
                  <Snapshot id={s.id} />
                  <button type="button" class="play">
                    ▶ {t('Play')}
                  </button>
                </div>
              )}
              {s.error && <div class="hint">{s.error}</div>}
            </Card>
          ))}
        </div>
      )}
    </div>
  );
}
