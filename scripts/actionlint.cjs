#!/usr/bin/env node
// Lints GitHub Actions workflows with the actionlint that scripts/install-actionlint puts in
// .tools/actionlint (rhysd/actionlint built to WebAssembly, so no binary from GitHub).
//
//   node scripts/actionlint.cjs [FILE ...]   (default: every .github/workflows/*.yml / *.yaml)
//
// Prints one `file:line:col: message [kind]` line per finding. Exit status: 0 clean,
// 1 findings, 2 usage or I/O error (no linter installed, unreadable file, nothing to lint).
// Unlike the native binary it reads no .github/actionlint.yaml and runs no shellcheck or
// pyflakes over `run:` scripts: the WebAssembly build has neither.
"use strict";

const fs = require("node:fs");
const path = require("node:path");

const ROOT = path.resolve(__dirname, "..");
const PACKAGE = path.join(ROOT, ".tools", "actionlint", "node_modules", "@tktco", "node-actionlint");
const USAGE = "usage: node scripts/actionlint.cjs [WORKFLOW.yml ...]";

function fail(message) {
  process.stderr.write(`actionlint: ${message}\n`);
  process.exit(2);
}

function defaultWorkflows() {
  const dir = path.join(ROOT, ".github", "workflows");
  let names;
  try {
    names = fs.readdirSync(dir);
  } catch (error) {
    fail(`cannot list ${path.relative(process.cwd(), dir) || dir}: ${error.message}`);
  }
  return names
    .filter((name) => /\.ya?ml$/.test(name))
    .sort()
    .map((name) => path.relative(process.cwd(), path.join(dir, name)));
}

async function main(args) {
  if (args.includes("-h") || args.includes("--help")) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const options = args.filter((arg) => arg.startsWith("-") && arg !== "-");
  if (options.length > 0) {
    fail(`unknown option ${options[0]}\n${USAGE}`);
  }
  const files = args.length > 0 ? args : defaultWorkflows();
  if (files.length === 0) {
    fail("no workflow files to lint");
  }
  if (!fs.existsSync(path.join(PACKAGE, "package.json"))) {
    fail(`not installed in ${path.relative(process.cwd(), PACKAGE)}: run scripts/install-actionlint`);
  }
  // run-lint.js, not the package's index: the index also loads its pretty-printer, which
  // needs ES-module-only dependencies this CommonJS runner cannot require on older Node.
  const { runLint } = require(path.join(PACKAGE, "build", "run-lint.js"));

  let findings = 0;
  for (const file of files) {
    let text;
    try {
      text = fs.readFileSync(file === "-" ? 0 : file, "utf8");
    } catch (error) {
      fail(`cannot read ${file}: ${error.message}`);
    }
    for (const r of await runLint(text, file)) {
      process.stdout.write(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]\n`);
      findings += 1;
    }
  }
  return findings > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => fail(error && error.stack ? error.stack : String(error)),
);
