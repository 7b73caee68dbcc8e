import preact from '@preact/preset-vite';
import { defineConfig } from 'vite';

/**
 * The web UI's build: `npm run build:web` writes dist/web (index.html + content-hashed assets/),
 * which src/web serves. No inline script (the platform's CSP forbids it): the module-preload
 * polyfill is off and everything is an external file.
 */
export default defineConfig({
  root: import.meta.dirname,
  base: '/',
  plugins: [preact()],
  build: {
    outDir: '../dist/web',
    emptyOutDir: true,
    modulePreload: { polyfill: false },
    sourcemap: false,
    target: 'es2022',
    assetsInlineLimit: 0,
  },
});
