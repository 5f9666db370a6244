/**
 * @module framing — the one implementation of TCP stream framing: the declaration a plugin
 * (`meta().framing`) or a product (`transport.tcp.framing`) makes, its validation, the framer that
 * cuts a byte stream into frames, and the wrapping of bytes into a frame for the way back. Used by
 * the TCP ingress (runtime/ingress) and by the plugin host to check a plugin's meta.
 */
export { createFramer, encodeFrame, framePayload, parseFraming, FramingError, DEFAULT_MAX_FRAME, type Framing, type Framer } from './framing.ts';
