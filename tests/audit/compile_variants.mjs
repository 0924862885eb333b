#!/usr/bin/env node
// Compile the auditor's TEST-ONLY contracts (tests/audit/contracts/*.sol) with the pinned npm solc
// in contracts/node_modules, with the same settings as scripts/compile_contracts.mjs, and write
// tests/audit/contracts/<Contract>.json (abi, bytecode, compiler, sha256 of each source).
//
// Usage (from the repo root):  node tests/audit/compile_variants.mjs
// The artifacts are committed, so the tests need no Node; tests/audit/test_variants.py
// checks the recorded source hashes against the .sol files.
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, "..", "..");
const contractsDir = path.join(repoRoot, "contracts");
const variantsDir = path.join(here, "contracts");
const require = createRequire(path.join(contractsDir, "package.json"));
const solc = require("solc");

const SETTINGS = { evmVersion: "prague", optimizer: { enabled: true, runs: 200 }, viaIR: true };
const sha256 = (text) => createHash("sha256").update(text, "utf8").digest("hex");

const sources = {};
for (const file of readdirSync(variantsDir).filter((f) => f.endsWith(".sol")).sort()) {
  sources[file] = { content: readFileSync(path.join(variantsDir, file), "utf8") };
}
// The variants import the production token unchanged.
sources["FedToken.sol"] = { content: readFileSync(path.join(contractsDir, "src", "FedToken.sol"), "utf8") };

function findImports(importPath) {
  const candidate = path.join(contractsDir, "node_modules", importPath);
  if (existsSync(candidate)) return { contents: readFileSync(candidate, "utf8") };
  return { error: `import not found: ${importPath} (run npm ci in contracts/)` };
}

const input = {
  language: "Solidity",
  sources,
  settings: { ...SETTINGS, outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } } },
};
const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
for (const diagnostic of output.errors ?? []) console.error(diagnostic.formattedMessage);
if ((output.errors ?? []).some((e) => e.severity === "error")) process.exit(1);

for (const file of Object.keys(sources).filter((f) => f !== "FedToken.sol")) {
  const name = file.replace(/\.sol$/, "");
  const compiled = output.contracts[file][name];
  const artifact = {
    contractName: name,
    compiler: { name: "solc", version: solc.version() },
    settings: SETTINGS,
    sources: Object.fromEntries(Object.entries(sources).map(([k, s]) => [k, sha256(s.content)])),
    abi: compiled.abi,
    bytecode: `0x${compiled.evm.bytecode.object}`,
  };
  writeFileSync(path.join(variantsDir, `${name}.json`), `${JSON.stringify(artifact, null, 1)}\n`);
  console.log(`wrote tests/audit/contracts/${name}.json`);
}
