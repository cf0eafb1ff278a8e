// Compiles our own Solidity (contracts/*.sol) with the pinned npm `solc` and writes one
// {abi, bytecode} JSON per contract into the output directory. Called by connectors/build.rs.
// usage: node scripts/compile-contracts.js <contracts-dir> <out-dir>
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const [srcDir, outDir] = process.argv.slice(2);
if (!srcDir || !outDir) {
  console.error('usage: compile-contracts.js <contracts-dir> <out-dir>');
  process.exit(2);
}
const sources = {};
for (const f of fs.readdirSync(srcDir).filter((f) => f.endsWith('.sol')).sort()) {
  sources[f] = { content: fs.readFileSync(path.join(srcDir, f), 'utf8') };
}
const input = {
  language: 'Solidity',
  sources,
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: 'paris',
    outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
  },
};
const out = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (out.errors || []).filter((e) => e.severity === 'error');
if (errors.length) {
  for (const e of errors) console.error(e.formattedMessage);
  process.exit(1);
}
fs.mkdirSync(outDir, { recursive: true });
for (const file of Object.keys(out.contracts || {})) {
  for (const [name, c] of Object.entries(out.contracts[file])) {
    const json = { abi: c.abi, bytecode: '0x' + c.evm.bytecode.object };
    fs.writeFileSync(path.join(outDir, name + '.json'), JSON.stringify(json));
  }
}
console.log('solc ' + solc.version() + ': compiled ' + Object.keys(sources).join(', '));
