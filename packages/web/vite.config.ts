import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

/**
 * The console is static files served by `gatehouse server` from dist/ (index.html and
 * hashed assets). No inline script or style ends up in index.html, so the server's CSP can
 * forbid them; nothing from the server's environment is built in (envPrefix is a name no
 * variable has).
 */
export default defineConfig({
  plugins: [react()],
  envPrefix: 'GATEHOUSE_CONSOLE_PUBLIC_',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    reportCompressedSize: true,
  },
});
