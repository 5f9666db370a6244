#!/usr/bin/python3
"""A real RTSP camera for the stream tests: GStreamer's RTSP server with a moving H.264 test pattern.

usage: camera.py PORT [--size WxH] [--fps N] [--user U --password P]
Prints "ready rtsp://127.0.0.1:PORT/test" on stdout once it serves; exits when stdin closes
(so a killed test run leaves no camera behind).
"""
import argparse
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("port", type=int)
parser.add_argument("--size", default="640x360")
parser.add_argument("--fps", type=int, default=25)
parser.add_argument("--user")
parser.add_argument("--password")
args = parser.parse_args()
width, height = args.size.split("x")

Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(str(args.port))
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},framerate={args.fps}/1 "
    f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={args.fps} "
    "! rtph264pay name=pay0 pt=96 config-interval=1 )"
)
factory.set_shared(True)
if args.user:
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
    server.set_auth(auth)
    perms = GstRtspServer.RTSPPermissions()
    perms.add_permission_for_role("user", "media.factory.access", True)
    perms.add_permission_for_role("user", "media.factory.construct", True)
    factory.set_permissions(perms)
server.get_mount_points().add_factory("/test", factory)
if server.attach(None) == 0:
    print("error: cannot listen", flush=True)
    sys.exit(1)
loop = GLib.MainLoop()


def watch_stdin():
    sys.stdin.read()
    GLib.idle_add(loop.quit)


threading.Thread(target=watch_stdin, daemon=True).start()
print(f"ready rtsp://127.0.0.1:{server.get_bound_port()}/test", flush=True)
loop.run()
