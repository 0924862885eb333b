#!/usr/bin/env node
// Compile fedchain's Solidity contracts with the pinned npm `solc` and write ABI + bytecode
// artifacts to fedchain/ledger/artifacts/<Contract>.json.
//
// Usage (what `make contracts` runs):  cd contracts && npm ci && node ../scripts/compile_contracts.mjs
//
// Each artifact records the compiler version, the settings (evmVersion, optimizer) and sha256
// hashes of every source file that went into the build (our sources and the OpenZeppelin files
// they import), plus `sourceHash`: sha256 over our own sources, which tests/ledger recompute to
// prove the committed artifacts match the sources. Python users never need Node: the artifacts
// are committed.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const contractsDir = path.join(repoRoot, "contracts");
const srcDir = path.join(contractsDir, "src");
const outDir = process.env.FEDCHAIN_ARTIFACTS_DIR
  ? path.resolve(process.env.FEDCHAIN_ARTIFACTS_DIR)
  : path.join(repoRoot, "fedchain", "ledger", "artifacts");
const require = createRequire(path.join(contractsDir, "package.json"));
const solc = require("solc");

const EVM_VERSION = "prague"; // eth-tester 0.14 / py-evm 0.12 run Prague; solc 0.8.37 defaults to osaka
const OPTIMIZER = { enabled: true, runs: 200 };
const VIA_IR = true; // the recordRound frame needs more than 16 stack slots
const CONTRACTS = ["FedToken", "ContributionLedger"];

const sha256 = (text) => createHash("sha256").update(text, "utf8").digest("hex");

// Our sources are keyed "src/<File>.sol" (relative to contracts/); imports resolve from node_modules.
const sources = {};
for (const file of readdirSync(srcDir).filter((f) => f.endsWith(".sol")).sort()) {
  sources[`src/${file}`] = { content: readFileSync(path.join(srcDir, file), "utf8") };
}

const imported = {};
function findImports(importPath) {
  const candidates = [path.join(contractsDir, "node_modules", importPath), path.join(contractsDir, importPath)];
  for (const candidate of candidates) {
    if (existsSync(candidate)) {
      const content = readFileSync(candidate, "utf8");
      imported[importPath] = sha256(content);
      return { contents: content };
    }
  }
  return { error: `import not found: ${importPath} (run npm ci in contracts/)` };
}

const input = {
  language: "Solidity",
  sources,
  settings: {
    evmVersion: EVM_VERSION,
    optimizer: OPTIMIZER,
    viaIR: VIA_IR,
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};

const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (output.errors ?? []).filter((e) => e.severity === "error");
for (const diagnostic of output.errors ?? []) {
  console.error(diagnostic.formattedMessage);
}
if (errors.length > 0) {
  process.exit(1);
}

const ownHashes = Object.fromEntries(Object.entries(sources).map(([name, s]) => [name, sha256(s.content)]));
// sourceHash: sha256 of "<name>:<sha256>\n" lines of our own sources, sorted by name.
const sourceHash = sha256(
  Object.keys(ownHashes)
    .sort()
    .map((name) => `${name}:${ownHashes[name]}\n`)
    .join(""),
);
const dependencyHashes = Object.fromEntries(Object.keys(imported).sort().map((k) => [k, imported[k]]));

mkdirSync(outDir, { recursive: true });
for (const name of CONTRACTS) {
  const sourceName = `src/${name}.sol`;
  const compiled = output.contracts?.[sourceName]?.[name];
  if (!compiled) {
    console.error(`no output for ${sourceName}:${name}`);
    process.exit(1);
  }
  const artifact = {
    contractName: name,
    sourceName: `contracts/${sourceName}`,
    compiler: { name: "solc", version: solc.version() },
    settings: { evmVersion: EVM_VERSION, optimizer: OPTIMIZER, viaIR: VIA_IR },
    sourceHash,
    sources: Object.fromEntries(Object.entries(ownHashes).map(([k, v]) => [`contracts/${k}`, v])),
    dependencies: dependencyHashes,
    abi: compiled.abi,
    bytecode: `0x${compiled.evm.bytecode.object}`,
    deployedBytecode: `0x${compiled.evm.deployedBytecode.object}`,
  };
  const target = path.join(outDir, `${name}.json`);
  writeFileSync(target, `${JSON.stringify(artifact, null, 2)}\n`);
  console.log(`wrote ${path.relative(repoRoot, target)} (${(compiled.evm.deployedBytecode.object.length / 2) | 0} bytes runtime)`);
}
