//! The loader on the real market data bundled with the repository.

use std::path::Path;

use defai::connectors::{CsvFormat, LoadOptions, load_csv_bytes, load_csv_file};
use defai::engine::{EMBEDDED_DATA, EMBEDDED_NAME};

fn check_eth_usdc(series: &defai::connectors::Series) {
    let r = &series.report;
    assert_eq!(series.bars.len(), 33_158);
    assert_eq!(r.rows, 33_158);
    assert_eq!(r.format, CsvFormat::CryptoDataDownload);
    assert!(r.reordered, "the file is newest first");
    assert!(
        series.bars.windows(2).all(|w| w[0].ts < w[1].ts),
        "ascending after load"
    );
    assert_eq!(series.bars[0].ts, 1_544_842_800, "2018-12-15 03:00 UTC");
    assert_eq!(
        series.bars.last().unwrap().ts,
        1_664_416_800,
        "2022-09-29 02:00 UTC"
    );
    assert_eq!(r.interval_s, 3600);
    assert_eq!(r.gaps, 19, "hours with no candle, 2 to 11 h long");
    assert_eq!(r.missing_bars, 58);
    assert_eq!(r.duplicates, 0);
    assert_eq!(r.skipped_rows, 0);
}

#[test]
fn bundled_copy_loads_ascending_with_gaps_reported() {
    check_eth_usdc(&load_csv_bytes(EMBEDDED_NAME, EMBEDDED_DATA, LoadOptions::default()).unwrap());
}

#[test]
fn the_file_loader_reads_the_bundled_copy_as_the_embedded_loader_does() {
    // The bundled file as a user would point `--data` at it (gzip included), against the copy
    // embedded in the binary: one loader path, the same bars. Only files of this repository.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/Binance_ETHUSDC_1h.csv.gz");
    let from_file = load_csv_file(&path, LoadOptions::default()).expect("data/ in the repository");
    check_eth_usdc(&from_file);
    let embedded = load_csv_bytes(EMBEDDED_NAME, EMBEDDED_DATA, LoadOptions::default()).unwrap();
    assert_eq!(
        from_file.bars, embedded.bars,
        "the embedded copy is the file"
    );
}
