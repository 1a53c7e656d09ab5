// Builds packages/server/native/*.c into packages/server/dist/native/*.so with the system's C
// compiler. Optional: without a compiler it says what is skipped and the build goes on (browser
// RDP then runs FreeRDP 3 without its primitives hint, ~0.3 s slower to connect).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';

const from = new URL('../packages/server/native/', import.meta.url);
const to = new URL('../packages/server/dist/native/', import.meta.url);
mkdirSync(to, { recursive: true });
for (const source of readdirSync(from).filter((f) => f.endsWith('.c'))) {
  const library = source.replace(/\.c$/, '.so');
  try {
    execFileSync(
      'cc',
      ['-shared', '-fPIC', '-O2', '-Wall', '-Werror', '-o', new URL(library, to).pathname, new URL(source, from).pathname],
      {
        stdio: ['ignore', 'inherit', 'inherit'],
      },
    );
  } catch (error) {
    const why = error.code === 'ENOENT' ? 'no C compiler (cc) is installed' : `cc failed (${error.message.split('\n')[0]})`;
    console.warn(`build-native: ${library} not built: ${why}. Install build-essential to build it; Gatehouse works without it.`);
  }
}
