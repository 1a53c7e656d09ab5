// The folder `vite build` writes the console into; `gatehouse server` serves it.
import { fileURLToPath } from 'node:url';

export const webRoot = fileURLToPath(new URL('./dist/', import.meta.url));
