// Copies the built-in runbooks (YAML) beside the compiled server, where it reads them at start.
import { cpSync, mkdirSync, readdirSync } from 'node:fs';

const from = new URL('../packages/server/src/runbooks/builtin/', import.meta.url);
const to = new URL('../packages/server/dist/runbooks/builtin/', import.meta.url);
mkdirSync(to, { recursive: true });
for (const file of readdirSync(from).filter((f) => f.endsWith('.yaml'))) cpSync(new URL(file, from), new URL(file, to));
