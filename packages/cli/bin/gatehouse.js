#!/usr/bin/env -S node --no-memory-reducer --heap-growing-percent=100
// Node.js 24 LTS is what Gatehouse is built and tested with; older than 22 is refused.
if (Number(process.versions.node.split('.')[0]) < 22) {
  process.stderr.write(
    `gatehouse: Node.js ${process.version} is too old; Gatehouse runs on Node.js 24 LTS. From a clone, run ./gatehouse ` +
      '(scripts/node24.sh fetches Node 24 with npm when the system has an older one), or install Node.js 24.\n',
  );
  process.exit(1);
}
// `gatehouse agent run` loads only the agent (dist/agent/main.js): the host agent stays
// small, without the server, database and API code the rest of the CLI pulls in.
const [command, verb] = process.argv.slice(2);
const run =
  command === 'agent' && verb === 'run'
    ? import('../dist/agent/main.js').then(({ runAgent }) => runAgent(process.argv.slice(4)))
    : import('../dist/index.js').then(({ main }) => main(process.argv));

run.then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    process.stderr.write(`gatehouse: ${error?.message ?? String(error)}\n`);
    process.exitCode = 1;
  },
);
