/**
 * @module patches — every change FLUX makes to the internals of a dependency, and every module-loader
 * hook, one file each: aedes and mqtt-packet (the broker's memory, PUBACK path and idle loggers, sessions taken
 * over by another node of a cluster, the QoS 2 receive state), Node-RED (the message path and the editor's comms), Node's
 * module loader (deferred libraries; FLUX's type-stripped sources, ts-strip-cache.js, the one file in
 * JavaScript) and V8 (a borrowed gc). Each file says why the patch exists and what it saves, and exports a shape check of what it
 * relies on upstream. test/patches/upstream-shape.test.ts runs every check in `PATCH_SHAPES` against
 * the installed packages, so an upgrade that changes one fails there, loudly, by name. At run time a
 * patch whose upstream no longer matches is skipped (its apply function answers false) and the
 * behaviour stays upstream's.
 */
import { aedesClientShape } from './aedes-client.ts';
import { mqttPacketWritesShape } from './mqtt-packet-writes.ts';
import { nodeRedMetricShape } from './node-red-metric.ts';
import { editorCommsShape } from './node-red-comms-limit.ts';
import { moduleDeferralShape } from './module-deferral.ts';
import { v8GcShape } from './v8-gc.ts';
import { aedesClusterTakeoverShape } from './aedes-cluster-takeover.ts';
import { mqttPacketDebugShape } from './mqtt-packet-debug.ts';
import { aedesQos2ReceiveShape } from './aedes-qos2-receive.ts';
import { tsStripCacheShape } from './ts-strip-cache.js';

export { patchAedesConnection, trimAfterConnect, brokerAssignedClientId, connectWill, type AedesClientInternals } from './aedes-client.ts';
export { patchMqttPacketWrites } from './mqtt-packet-writes.ts';
export { patchNodeRedMetric } from './node-red-metric.ts';
export { limitEditorComms, EDITOR_COMMS_MAX_PAYLOAD } from './node-red-comms-limit.ts';
export { deferLibraries, type DeferredLibrary, type DeferringHooks } from './module-deferral.ts';
export { borrowedGc, type Gc, type GcOptions } from './v8-gc.ts';
export { keepSessionsTakenOverElsewhere } from './aedes-cluster-takeover.ts';
export { quietMqttPacketDebug } from './mqtt-packet-debug.ts';
export { boundQos2Receive, type Qos2Receive } from './aedes-qos2-receive.ts';

/** Every patch by file, with its shape check: what it needs upstream and is missing (empty: all there). */
export const PATCH_SHAPES: Record<string, () => string[] | Promise<string[]>> = {
  'aedes-client.ts': aedesClientShape,
  'mqtt-packet-writes.ts': mqttPacketWritesShape,
  'node-red-metric.ts': nodeRedMetricShape,
  'node-red-comms-limit.ts': editorCommsShape,
  'module-deferral.ts': moduleDeferralShape,
  'v8-gc.ts': v8GcShape,
  'aedes-cluster-takeover.ts': aedesClusterTakeoverShape,
  'mqtt-packet-debug.ts': mqttPacketDebugShape,
  'aedes-qos2-receive.ts': aedesQos2ReceiveShape,
  'ts-strip-cache.js': tsStripCacheShape,
};
