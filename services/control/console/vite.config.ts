import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

/**
 * The web console's production build: everything bundled into hashed files under
 * services/control/dist/console (served by the control service at /console/), no inline
 * script or style, nothing loaded from elsewhere: the control service's CSP allows only 'self'.
 */
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/console/',
  logLevel: 'warn',
  build: {
    outDir: fileURLToPath(new URL('../dist/console', import.meta.url)),
    emptyOutDir: true,
    // No inline <script> for the preload polyfill: every browser the console supports has modulepreload.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    target: 'es2022',
    sourcemap: false,
  },
});
