//! Prepares contract bytecode for the devnet, from the pinned npm packages (never committed):
//! third-party artifacts are read from `node_modules`, our own Solidity (`contracts/`) is compiled
//! with the npm `solc`. Each becomes `$OUT_DIR/<Name>.hex`. Without `node_modules` (before
//! `npm ci`) the files are empty and the devnet says so at run time; everything else builds.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

const ARTIFACTS: &[(&str, &str)] = &[
    (
        "UniswapV2Factory",
        "@uniswap/v2-core/build/UniswapV2Factory.json",
    ),
    ("UniswapV2Pair", "@uniswap/v2-core/build/UniswapV2Pair.json"),
    (
        "UniswapV2Router02",
        "@uniswap/v2-periphery/build/UniswapV2Router02.json",
    ),
    ("WETH9", "canonical-weth/build/contracts/WETH9.json"),
    // Gnosis CTF + FPMM, Truffle artifacts (solc 0.5.10, no library link placeholders). The
    // ConditionalTokens build shipped beside the market makers is the one they were tested with.
    (
        "ConditionalTokens",
        "@gnosis.pm/conditional-tokens-market-makers/build/contracts/ConditionalTokens.json",
    ),
    (
        "FixedProductMarketMakerFactory",
        "@gnosis.pm/conditional-tokens-market-makers/build/contracts/FixedProductMarketMakerFactory.json",
    ),
];
const OWN: &[&str] = &["DevToken"];

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let modules = root.join("node_modules");
    println!(
        "cargo:rerun-if-changed={}",
        root.join("contracts").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        root.join("scripts/compile-contracts.js").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        modules.join(".package-lock.json").display()
    );

    let mut missing = Vec::new();
    for (name, rel) in ARTIFACTS {
        let hex = fs::read_to_string(modules.join(rel))
            .ok()
            .and_then(|text| bytecode_of(&text));
        if hex.is_none() {
            missing.push(rel.to_string());
        }
        write(&out, name, hex.as_deref().unwrap_or(""));
    }

    let compiled = out.join("solc");
    let ok = modules.join("solc").is_dir()
        && Command::new("node")
            .arg(root.join("scripts/compile-contracts.js"))
            .arg(root.join("contracts"))
            .arg(&compiled)
            .env("NODE_PATH", &modules)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    for name in OWN {
        let hex = ok
            .then(|| fs::read_to_string(compiled.join(format!("{name}.json"))).ok())
            .flatten()
            .and_then(|text| bytecode_of(&text));
        if hex.is_none() {
            missing.push(format!("contracts/{name}.sol (compiled with npm solc)"));
        }
        write(&out, name, hex.as_deref().unwrap_or(""));
    }
    if !missing.is_empty() {
        println!(
            "cargo:warning=devnet contracts unavailable until `npm ci` is run: {}",
            missing.join(", ")
        );
    }
}

/// The creation bytecode as bare hex, from a Waffle/solc (`bytecode` string or
/// `evm.bytecode.object`) or Truffle (`bytecode` with 0x) artifact.
fn bytecode_of(text: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let code = v
        .get("bytecode")
        .and_then(|b| b.as_str())
        .or_else(|| v.pointer("/evm/bytecode/object").and_then(|b| b.as_str()))?;
    let code = code.trim_start_matches("0x");
    // Unlinked library placeholders (`__Name____`) are not hex: such an artifact is refused.
    (!code.is_empty() && code.bytes().all(|b| b.is_ascii_hexdigit())).then(|| code.to_string())
}

fn write(out: &Path, name: &str, hex: &str) {
    fs::write(out.join(format!("{name}.hex")), hex).unwrap();
}
