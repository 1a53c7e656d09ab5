#!/usr/bin/env -S node --no-memory-reducer
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
