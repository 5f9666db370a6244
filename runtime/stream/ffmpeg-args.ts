/** The command lines: one ffmpeg per camera (every output through the tee muxer), relays, snapshots. */
import type { Stream } from './store.ts';

/**
 * RTSP socket timeout: a frozen camera makes ffmpeg exit after about twice this. The supervisor's
 * own stall check (5 s without a video frame, runner.ts) usually acts first; this is the backstop,
 * and at twice 3 s it still lands inside the promised 10 s (docs/streams.md).
 */
export const RTSP_TIMEOUT_US = 3_000_000;
/** HLS segment length (s); the camera's GOP decides the real cut points in copy mode. */
export const HLS_SEGMENT_S = 1;
/** default recording segment length (s) */
export const RECORD_SEGMENT_S = 10;

const common = ['-hide_banner', '-nostdin', '-loglevel', 'error'];
const input = (url: string) => ['-rtsp_transport', 'tcp', '-timeout', String(RTSP_TIMEOUT_US), '-analyzeduration', '1000000', '-fflags', '+genpts', '-i', url];

/**
 * The camera process. Runs in the stream's folder, so the tee's slave paths are plain relative
 * names (the data dir's path never needs tee escaping). FLV goes to stdout for the hub.
 */
export function cameraArgs(s: Pick<Stream, 'transcode' | 'audio' | 'record'>, url: string, recordSegmentS = RECORD_SEGMENT_S): string[] {
  const args = [...common, ...input(url), '-map', '0:v:0'];
  if (s.audio !== 'off') args.push('-map', '0:a:0?');
  if (s.transcode === 'h264') {
    args.push('-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-pix_fmt', 'yuv420p', '-g', '50', '-keyint_min', '25', '-sc_threshold', '0');
  } else {
    args.push('-c:v', 'copy');
  }
  if (s.audio === 'aac') args.push('-c:a', 'aac', '-b:a', '64k', '-ar', '44100');
  else if (s.audio === 'copy') args.push('-c:a', 'copy');
  const slaves = [
    '[f=flv:flvflags=no_duration_filesize]pipe\\:1',
    `[f=hls:hls_time=${HLS_SEGMENT_S}:hls_list_size=6:hls_flags=delete_segments+omit_endlist+independent_segments+temp_file+program_date_time:hls_start_number_source=epoch:hls_segment_filename=live/s%d.ts]live/index.m3u8`,
  ];
  if (s.record) slaves.push(`[f=segment:segment_time=${recordSegmentS}:strftime=1:segment_format=mpegts]rec/%s.ts`);
  args.push('-flush_packets', '1', '-f', 'tee', slaves.join('|'));
  return args;
}

/** One RTMP push: FLV from the hub on stdin, copied to the target. */
export function relayArgs(target: string): string[] {
  return [...common, '-f', 'flv', '-analyzeduration', '1000000', '-i', 'pipe:0', '-c', 'copy', '-f', 'flv', '-flvflags', 'no_duration_filesize', target];
}

/** A JPEG of one frame: from the hub's keyframe (`url` undefined, FLV on stdin) or straight from the camera. */
export function snapshotArgs(url: string | undefined): string[] {
  const src = url === undefined ? ['-f', 'flv', '-i', 'pipe:0'] : input(url);
  return [...common, ...src, '-map', '0:v:0', '-frames:v', '1', '-q:v', '3', '-f', 'image2', '-c:v', 'mjpeg', 'pipe:1'];
}
