// Vite build of the operator console (console/src → console/dist, served at /console by runtime/console).
// The bundle is committed; test/console/bundle.test.ts checks that rebuilding gives the same files.
import { defineConfig } from 'vite';

export default defineConfig({
  root: import.meta.dirname,
  base: '/console/',
  logLevel: 'warn',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: process.env.FLUX_CONSOLE_OUT_DIR || 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    reportCompressedSize: false,
    chunkSizeWarningLimit: 1200,
    rolldownOptions: { checks: { pluginTimings: false } },
  },
});
