#!/usr/bin/env -S node --no-memory-reducer
import { main } from '../dist/index.js';

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    process.stderr.write(`gatehouse: ${error?.message ?? String(error)}\n`);
    process.exitCode = 1;
  },
);
