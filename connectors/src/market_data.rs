//! OHLCV CSV loading: CryptoDataDownload exports and a generic
//! `timestamp,open,high,low,close,volume` format, plain or gzip-compressed.
//!
//! Rows come out validated and ascending; gaps and duplicate timestamps are counted. A malformed
//! row stops the load with the file, line and field — or, with `skip_bad_rows`, is skipped and
//! counted.

use std::io::Read;
use std::path::Path;

use agent_core::Bar;
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use flate2::read::GzDecoder;

/// The CSV layouts the loader recognises from the header row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsvFormat {
    /// CryptoDataDownload: a banner line, then
    /// `Unix,Date,Symbol,Open,High,Low,Close,Volume <BASE>,Volume <QUOTE>,tradecount`.
    CryptoDataDownload,
    /// `timestamp,open,high,low,close,volume`; timestamp in unix s, ms or ISO-8601/RFC-3339.
    Generic,
}

/// How strict the loader is.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Skip and count malformed rows instead of failing.
    pub skip_bad_rows: bool,
}

/// What the loader found, besides the bars.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    /// The file path or in-memory name the bars came from.
    pub source: String,
    /// The layout the header was recognised as.
    pub format: CsvFormat,
    /// Data rows read (excluding banner and header).
    pub rows: usize,
    /// Malformed rows skipped (only with [`LoadOptions::skip_bad_rows`]).
    pub skipped_rows: usize,
    /// Rows dropped because an earlier row had the same timestamp.
    pub duplicates: usize,
    /// Places where consecutive bars are more than one interval apart.
    pub gaps: usize,
    /// Bars missing inside those gaps.
    pub missing_bars: u64,
    /// The usual spacing of bars, seconds (the median difference).
    pub interval_s: i64,
    /// The file was not in ascending order (CryptoDataDownload files are newest first).
    pub reordered: bool,
    /// The bytes the bars were read from (as stored: a gzip file's compressed bytes), when
    /// they were loaded from a file or from memory; `None` from a reader.
    pub identity: Option<InputIdentity>,
}

/// Which input a run read: its size and SHA-256, so an auditor can check that a file is the
/// one a journal's `run` record names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InputIdentity {
    /// Size, bytes.
    pub bytes: u64,
    /// SHA-256 of the bytes, lowercase hex (as `sha256sum` prints it).
    pub sha256: String,
}

impl InputIdentity {
    /// The identity of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        Self {
            bytes: bytes.len() as u64,
            sha256: format!("{:x}", sha2::Sha256::digest(bytes)),
        }
    }
}

/// Bars in ascending time order, with the report of how they were loaded.
#[derive(Debug, Clone)]
pub struct Series {
    /// Validated bars, ascending by timestamp, one per timestamp.
    pub bars: Vec<Bar>,
    /// What the loader found on the way.
    pub report: LoadReport,
}

/// Why a CSV could not be loaded. Every variant names the source.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read, or its gzip stream is corrupt.
    #[error("{source_name}: {error}")]
    Io {
        /// The file path or in-memory name.
        source_name: String,
        /// The I/O (or gzip decoding) error.
        error: std::io::Error,
    },
    /// A data row is malformed (without [`LoadOptions::skip_bad_rows`]), or the CSV itself
    /// cannot be parsed.
    #[error("{source_name}:{line}: field `{field}`: {reason}")]
    BadRow {
        /// The file path or in-memory name.
        source_name: String,
        /// 1-based line of the row (0 if the CSV reader could not tell).
        line: u64,
        /// The field at fault (`timestamp`, `open`, ..., `-` for a CSV syntax error).
        field: String,
        /// What is wrong: missing, not a number, not finite, fails bar validation (e.g. high
        /// below low), or the CSV reader's error.
        reason: String,
    },
    /// The first row after an optional banner is neither header the loader knows.
    #[error(
        "{source_name}:{line}: unrecognised header `{header}`; expected `timestamp,open,high,low,close,volume` or a CryptoDataDownload export"
    )]
    UnknownFormat {
        /// The file path or in-memory name.
        source_name: String,
        /// 1-based line of the header row.
        line: u64,
        /// The header's fields, comma-joined.
        header: String,
    },
    /// No header, or a header and no valid data rows.
    #[error("{source_name}: no data rows")]
    Empty {
        /// The file path or in-memory name.
        source_name: String,
    },
}

/// Loads a CSV file; a `.gz` file, or any file starting with the gzip magic bytes, is
/// decompressed on the fly.
///
/// # Errors
/// [`DataError::Io`] when the file cannot be read; otherwise as [`load_csv_reader`].
pub fn load_csv_file(path: &Path, opts: LoadOptions) -> Result<Series, DataError> {
    let name = path.display().to_string();
    let io = |error| DataError::Io {
        source_name: name.clone(),
        error,
    };
    let bytes = std::fs::read(path).map_err(io)?;
    load_csv_bytes(&name, &bytes, opts)
}

/// Loads CSV text (or gzip-compressed CSV) held in memory; `name` is used in messages.
///
/// # Errors
/// [`DataError::Io`] when gzip data does not decompress; otherwise as [`load_csv_reader`].
pub fn load_csv_bytes(name: &str, bytes: &[u8], opts: LoadOptions) -> Result<Series, DataError> {
    // Hashed on a second core while the first parses.
    std::thread::scope(|scope| {
        let identity = scope.spawn(|| InputIdentity::of(bytes));
        let mut series = load_csv_unhashed(name, bytes, opts)?;
        series.report.identity = Some(
            identity
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p)),
        );
        Ok(series)
    })
}

/// [`load_csv_bytes`] without the input's identity.
fn load_csv_unhashed(name: &str, bytes: &[u8], opts: LoadOptions) -> Result<Series, DataError> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut text = Vec::new();
        GzDecoder::new(bytes)
            .read_to_end(&mut text)
            .map_err(|error| DataError::Io {
                source_name: name.to_string(),
                error,
            })?;
        series_of(name, read_text(name, &text, opts)?)
    } else {
        series_of(name, read_text(name, bytes, opts)?)
    }
}

/// About how many rows `text` holds (a row of OHLCV is rarely under 40 bytes): the bars'
/// capacity, so they are not copied as they grow.
fn rows_in(text: &[u8]) -> usize {
    text.len() / 40
}

/// Text of at least this many bytes is parsed in parts on several threads.
const PARALLEL_FROM: usize = 4 << 20;

/// Reads CSV text held in memory: the header on this thread, then the data rows in parts of
/// whole lines, one thread each, when the text is large and holds no quote (a quoted field may
/// span lines, so such text is read in one pass). Rows, errors and line numbers are as one pass
/// would give them: the parts are joined in file order and the first bad row in the file is
/// the one reported.
fn read_text(name: &str, text: &[u8], opts: LoadOptions) -> Result<Rows, DataError> {
    let parts = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    // One pass for what splitting could change: a quoted field may span lines, and a `\r`
    // ends records (and numbers lines) differently from a `\n`.
    if parts < 2 || text.len() < PARALLEL_FROM || text.contains(&b'"') || text.contains(&b'\r') {
        return read_rows(name, text, opts, rows_in(text));
    }
    let mut rdr = reader_of(text);
    let Some(header) = find_header(name, &mut rdr)? else {
        return empty(name);
    };
    // The data starts where the reader stands after the header: the start of the next line
    // (no quotes, no `\r`: a record is one `\n`-ended line), numbered as the reader numbers it.
    let after = rdr.position();
    let data_start = after.byte() as usize;
    if data_start > text.len() || (data_start > 0 && text[data_start - 1] != b'\n') {
        return read_rows(name, text, opts, rows_in(text));
    }
    let data = &text[data_start..];
    let mut bounds = vec![0];
    for k in 1..parts {
        let at = (data.len() * k / parts).max(*bounds.last().unwrap_or(&0));
        let end = memchr::memchr(b'\n', &data[at..]).map_or(data.len(), |i| at + i + 1);
        bounds.push(end);
    }
    bounds.push(data.len());
    bounds.dedup();
    // A part starting with a byte-order mark would have it stripped by its reader.
    if bounds
        .iter()
        .any(|&b| data[b..].starts_with(b"\xEF\xBB\xBF"))
    {
        return read_rows(name, text, opts, rows_in(text));
    }
    // The first line of each part: the reader's line after the header, plus the lines before.
    let mut first_lines = vec![after.line()];
    for w in bounds.windows(2).take(bounds.len().saturating_sub(2)) {
        let before = *first_lines.last().unwrap_or(&0);
        first_lines.push(before + memchr::memchr_iter(b'\n', &data[w[0]..w[1]]).count() as u64);
    }
    let (format, cols) = (header.format, &header.cols);
    let results: Vec<Result<Rows, DataError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = bounds
            .windows(2)
            .zip(&first_lines)
            .map(|(w, &first)| {
                let part = &data[w[0]..w[1]];
                scope.spawn(move || {
                    let mut rows = Rows::with_capacity(format, rows_in(part));
                    data_rows(name, &mut reader_of(part), cols, opts, first - 1, &mut rows)
                        .map(|()| rows)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut all: Option<Rows> = None;
    for r in results {
        let r = r?;
        match &mut all {
            None => {
                let mut first = r;
                first
                    .bars
                    .reserve(rows_in(data).saturating_sub(first.bars.len()));
                all = Some(first);
            }
            Some(a) => {
                a.bars.extend_from_slice(&r.bars);
                a.rows += r.rows;
                a.skipped += r.skipped;
            }
        }
    }
    match all {
        Some(rows) if !rows.bars.is_empty() => Ok(rows),
        _ => empty(name),
    }
}

/// The CSV reader every path uses: no header handling (the header is found among the
/// records), rows of any length.
fn reader_of<R: Read>(input: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input)
}

/// [`DataError::Empty`] for `name`.
fn empty<T>(name: &str) -> Result<T, DataError> {
    Err(DataError::Empty {
        source_name: name.to_string(),
    })
}

/// Column positions of the fields we read.
struct Columns {
    ts: usize,
    open: usize,
    high: usize,
    low: usize,
    close: usize,
    volume: usize,
}

fn columns(header: &csv::StringRecord) -> Option<(CsvFormat, Columns)> {
    let names: Vec<String> = header
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let find = |n: &str| names.iter().position(|h| h == n);
    if let (Some(ts), Some(open), Some(high), Some(low), Some(close)) = (
        find("unix"),
        find("open"),
        find("high"),
        find("low"),
        find("close"),
    ) {
        // CDD names volumes after the symbols ("Volume ETH", "Volume USDC"): the first is base.
        let volume = names.iter().position(|h| h.starts_with("volume"))?;
        return Some((
            CsvFormat::CryptoDataDownload,
            Columns {
                ts,
                open,
                high,
                low,
                close,
                volume,
            },
        ));
    }
    Some((
        CsvFormat::Generic,
        Columns {
            ts: find("timestamp")?,
            open: find("open")?,
            high: find("high")?,
            low: find("low")?,
            close: find("close")?,
            volume: find("volume")?,
        },
    ))
}

/// Loads from any reader of CSV text.
///
/// # Errors
/// - [`DataError::UnknownFormat`]: the header is neither layout.
/// - [`DataError::BadRow`]: a row is malformed (unless `opts.skip_bad_rows`; a field the
///   loader reads that is not UTF-8 is one), or the reader fails (I/O).
/// - [`DataError::Empty`]: no header, or no valid data row.
pub fn load_csv_reader(
    name: &str,
    reader: impl Read,
    opts: LoadOptions,
) -> Result<Series, DataError> {
    series_of(name, read_rows(name, reader, opts, 0)?)
}

/// The series of the rows read from `name`: ordered, deduplicated, its spacing measured.
fn series_of(name: &str, rows: Rows) -> Result<Series, DataError> {
    let Rows {
        format,
        bars,
        rows,
        skipped,
    } = rows;
    let Ordered {
        bars,
        reordered,
        duplicates,
    } = in_order(bars);
    let Spacing {
        interval_s,
        gaps,
        missing_bars,
    } = spacing(&bars);
    Ok(Series {
        bars,
        report: LoadReport {
            source: name.to_string(),
            format,
            rows,
            skipped_rows: skipped,
            duplicates,
            gaps,
            missing_bars,
            interval_s,
            reordered,
            identity: None,
        },
    })
}

/// The data rows of a CSV as read, before ordering.
struct Rows {
    /// The layout the header was recognised as.
    format: CsvFormat,
    /// Each valid row's bar, in file order.
    bars: Vec<Bar>,
    /// Data rows read.
    rows: usize,
    /// Malformed rows skipped.
    skipped: usize,
}

impl Rows {
    /// None yet, in the `format` layout, with room for `capacity` bars.
    fn with_capacity(format: CsvFormat, capacity: usize) -> Self {
        Self {
            format,
            bars: Vec::with_capacity(capacity),
            rows: 0,
            skipped: 0,
        }
    }
}

/// A read failure of the CSV reader as a bad row (its line, or 0 when it has none).
fn read_error(name: &str, line_offset: u64, e: &csv::Error) -> DataError {
    let line = e.position().map_or(0, |p| p.line() + line_offset);
    DataError::BadRow {
        source_name: name.to_string(),
        line,
        field: "-".into(),
        reason: e.to_string(),
    }
}

/// Whether every field of `record` is blank (whitespace only, as `str::trim` sees it).
fn blank(record: &csv::ByteRecord) -> bool {
    record
        .iter()
        .all(|f| f.trim_ascii().is_empty() || field_text(f).is_ok_and(str::is_empty))
}

/// A CSV's header: its layout and columns.
struct Header {
    format: CsvFormat,
    cols: Columns,
}

/// Reads records of `rdr` up to the header, passing over blank lines and a CryptoDataDownload
/// banner; `None` when the input ends first.
///
/// # Errors
/// [`DataError::UnknownFormat`] when the first other record is no header we know;
/// [`DataError::BadRow`] when the reader fails.
fn find_header<R: Read>(name: &str, rdr: &mut csv::Reader<R>) -> Result<Option<Header>, DataError> {
    let mut record = csv::ByteRecord::new();
    loop {
        if !rdr
            .read_byte_record(&mut record)
            .map_err(|e| read_error(name, 0, &e))?
        {
            return Ok(None);
        }
        let line = record.position().map_or(0, csv::Position::line);
        if blank(&record) {
            continue;
        }
        // Before the header: a CryptoDataDownload banner is a single URL-like field.
        if record.len() == 1 && line == 1 {
            continue;
        }
        let text = csv::StringRecord::from_byte_record_lossy(record.clone());
        let (format, cols) = columns(&text).ok_or_else(|| DataError::UnknownFormat {
            source_name: name.to_string(),
            line,
            header: text.iter().map(str::trim).collect::<Vec<_>>().join(","),
        })?;
        return Ok(Some(Header { format, cols }));
    }
}

/// Parses every data record `rdr` has left into `out` (a malformed one skipped and counted
/// with `opts.skip_bad_rows`, else an error); blank lines are passed over. `line_offset` is
/// added to the reader's own line numbers (a part of the text starting past line 1).
fn data_rows<R: Read>(
    name: &str,
    rdr: &mut csv::Reader<R>,
    cols: &Columns,
    opts: LoadOptions,
    line_offset: u64,
    out: &mut Rows,
) -> Result<(), DataError> {
    let mut record = csv::ByteRecord::new();
    while rdr
        .read_byte_record(&mut record)
        .map_err(|e| read_error(name, line_offset, &e))?
    {
        if blank(&record) {
            continue;
        }
        out.rows += 1;
        match parse_row(&record, cols) {
            Ok(bar) => out.bars.push(bar),
            Err((field, reason)) => {
                let line = record.position().map_or(0, |p| p.line()) + line_offset;
                if opts.skip_bad_rows {
                    out.skipped += 1;
                    tracing::warn!(source = name, line, field, %reason, "skipping bad row");
                } else {
                    return Err(DataError::BadRow {
                        source_name: name.to_string(),
                        line,
                        field: field.to_string(),
                        reason,
                    });
                }
            }
        }
    }
    Ok(())
}

/// Reads every record of `reader` in one pass: the header ([`find_header`]), then the data
/// rows ([`data_rows`]).
fn read_rows<R: Read>(
    name: &str,
    reader: R,
    opts: LoadOptions,
    capacity_hint: usize,
) -> Result<Rows, DataError> {
    let mut rdr = reader_of(reader);
    let Some(header) = find_header(name, &mut rdr)? else {
        return empty(name);
    };
    let mut rows = Rows::with_capacity(header.format, capacity_hint);
    data_rows(name, &mut rdr, &header.cols, opts, 0, &mut rows)?;
    if rows.bars.is_empty() {
        return empty(name);
    }
    Ok(rows)
}

/// Bars ascending by timestamp, one per timestamp.
struct Ordered {
    bars: Vec<Bar>,
    /// The rows were not already ascending.
    reordered: bool,
    /// Rows dropped for a timestamp an earlier row had.
    duplicates: usize,
}

/// Sorts the rows by timestamp and drops those whose timestamp an earlier row has.
fn in_order(mut bars: Vec<Bar>) -> Ordered {
    let reordered = bars.windows(2).any(|w| w[1].ts < w[0].ts);
    if reordered {
        // A stable sort: among equal timestamps the row that came first in the file is kept.
        bars.sort_by_key(|b| b.ts);
    }
    let before = bars.len();
    bars.dedup_by_key(|b| b.ts);
    Ordered {
        duplicates: before - bars.len(),
        bars,
        reordered,
    }
}

/// How ascending bars are spaced.
struct Spacing {
    /// The median difference between consecutive bars, seconds (0 for fewer than two).
    interval_s: i64,
    /// Places where consecutive bars are more than one interval apart.
    gaps: usize,
    /// Bars missing inside those gaps.
    missing_bars: u64,
}

/// The usual spacing of `bars` and the gaps in it.
fn spacing(bars: &[Bar]) -> Spacing {
    let mut deltas: Vec<i64> = bars.windows(2).map(|w| w[1].ts - w[0].ts).collect();
    let mid = deltas.len() / 2;
    let interval_s = if deltas.is_empty() {
        0
    } else {
        *deltas.select_nth_unstable(mid).1
    };
    let (mut gaps, mut missing_bars) = (0usize, 0u64);
    if interval_s > 0 {
        for w in bars.windows(2) {
            let d = w[1].ts - w[0].ts;
            if d > interval_s {
                gaps += 1;
                missing_bars += ((d / interval_s) - 1).max(0) as u64;
            }
        }
    }
    Spacing {
        interval_s,
        gaps,
        missing_bars,
    }
}

type RowFault = (&'static str, String);

/// The bar of a data record, validated; a fault names the field and what is wrong with it.
fn parse_row(rec: &csv::ByteRecord, c: &Columns) -> Result<Bar, RowFault> {
    let get = |idx: usize, field: &'static str| -> Result<&str, RowFault> {
        match rec.get(idx).map(field_text) {
            Some(Ok(s)) if !s.is_empty() => Ok(s),
            Some(Err(())) => Err((field, "is not UTF-8 text".to_string())),
            _ => Err((field, "is missing".to_string())),
        }
    };
    let num = |idx: usize, field: &'static str| -> Result<f64, RowFault> {
        if let Some(v) = rec.get(idx).and_then(|f| plain_decimal(f.trim_ascii())) {
            return Ok(v);
        }
        let s = get(idx, field)?;
        let v: f64 = s
            .parse()
            .map_err(|_| (field, format!("`{s}` is not a number")))?;
        if !v.is_finite() {
            return Err((field, format!("`{s}` is not finite")));
        }
        Ok(v)
    };
    let ts = parse_timestamp(get(c.ts, "timestamp")?).map_err(|r| ("timestamp", r))?;
    let bar = Bar {
        ts,
        open: num(c.open, "open")?,
        high: num(c.high, "high")?,
        low: num(c.low, "low")?,
        close: num(c.close, "close")?,
        volume: num(c.volume, "volume")?,
    };
    bar.validate()
        .map_err(|f| (f.field, f.problem.to_string()))?;
    Ok(bar)
}

/// Powers of ten a `f64` holds exactly: 10^0 to 10^22.
const EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A plain decimal (`[+-]digits[.digits]`, the way price files write numbers) as the `f64`
/// `str::parse` gives, on the fast path of Clinger (1990), "How to read floating point numbers
/// accurately": when the digits as an integer `m` are at most 2^53 and there are `k` ≤ 22 of
/// them after the point, `m` and `10^k` are exact doubles and the one division `m / 10^k` is
/// correctly rounded, so the result is the nearest double to the text, bit for bit what the
/// full parser returns. `None` for anything else (an exponent, more digits, not a number),
/// which the full parser then reads.
fn plain_decimal(text: &[u8]) -> Option<f64> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    let (mut mantissa, mut count, mut after_point, mut point) = (0u64, 0u32, 0u32, false);
    for &c in digits {
        match c {
            b'0'..=b'9' => {
                // 19 digits still fit a u64; more go to the full parser.
                if count == 19 {
                    return None;
                }
                mantissa = mantissa * 10 + u64::from(c - b'0');
                count += 1;
                after_point += u32::from(point);
            }
            b'.' if !point => point = true,
            _ => return None,
        }
    }
    if count == 0 || mantissa > 1 << 53 {
        return None;
    }
    let scale = *EXACT_POWERS_OF_TEN.get(after_point as usize)?;
    let v = mantissa as f64 / scale;
    Some(if negative { -v } else { v })
}

/// A field's text without the whitespace around it (`str::trim`); `Err` when it is not UTF-8.
fn field_text(raw: &[u8]) -> Result<&str, ()> {
    std::str::from_utf8(raw).map(str::trim).map_err(|_| ())
}

/// Unix seconds from unix seconds, milliseconds or microseconds (told apart by magnitude), or an
/// ISO-8601 / RFC-3339 date-time (a zone-less one is taken as UTC).
///
/// # Errors
/// A message quoting `s` when it is neither an integer nor a date-time in one of those forms.
pub fn parse_timestamp(s: &str) -> Result<i64, String> {
    if let Ok(n) = s.parse::<i64>() {
        let abs = n.unsigned_abs();
        return Ok(if abs >= 100_000_000_000_000 {
            n / 1_000_000
        } else if abs >= 100_000_000_000 {
            n / 1_000
        } else {
            n
        });
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Ok(dt.timestamp());
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(dt.and_utc().timestamp());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .map(|d| d.and_utc().timestamp())
            .unwrap_or(0));
    }
    Err(format!("`{s}` is not a unix time or an ISO-8601 date-time"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CSV of `rows` one-minute bars (over 4 MiB from ~90,000 rows: read in parts), with
    /// blank lines, an out-of-order pair and a duplicate spread through it; `bad` replaces
    /// that data row's close with text.
    fn big_csv(rows: usize, bad: Option<usize>) -> String {
        big_csv_after("", rows, bad)
    }

    /// [`big_csv`] with `before` ahead of the header.
    fn big_csv_after(before: &str, rows: usize, bad: Option<usize>) -> String {
        let mut t = format!("{before}timestamp,open,high,low,close,volume\n");
        for i in 0..rows {
            let ts = 1_600_000_000 + 60 * i as i64;
            // Rows 1000 and 1001 swapped; row 70,000 repeats row 69,999's time.
            let ts = match i {
                1000 => ts + 60,
                1001 => ts - 60,
                70_000 => ts - 60,
                _ => ts,
            };
            let p = 2000.0 + (i % 977) as f64 * 0.0625;
            if Some(i) == bad {
                t.push_str(&format!(
                    "{ts},{p:.4},{:.4},{:.4},oops,1.5\n",
                    p + 1.0,
                    p - 1.0
                ));
            } else {
                t.push_str(&format!(
                    "{ts},{p:.4},{:.4},{:.4},{p:.4},1.5\n",
                    p + 1.0,
                    p - 1.0
                ));
            }
            if i % 20_011 == 0 {
                t.push_str("\n , \n");
            }
        }
        t
    }

    #[test]
    fn a_large_file_read_in_parts_gives_what_one_pass_gives_rows_errors_and_lines() {
        let text = big_csv(100_000, None);
        assert!(text.len() > PARALLEL_FROM, "{} bytes", text.len());
        let opts = LoadOptions::default();
        let parts = read_text("big", text.as_bytes(), opts).unwrap();
        let one = read_rows("big", text.as_bytes(), opts, 0).unwrap();
        assert_eq!((parts.rows, parts.skipped), (one.rows, one.skipped));
        assert_eq!(parts.rows, 100_000);
        assert_eq!(parts.bars, one.bars);
        let (a, b) = (
            series_of("big", parts).unwrap(),
            series_of("big", one).unwrap(),
        );
        assert_eq!(a.bars, b.bars);
        assert_eq!(a.report, b.report);
        assert!(
            a.report.reordered && a.report.duplicates == 1,
            "{:?}",
            a.report
        );

        // A bad row late in the file: the same error, at the same line, either way.
        let bad = big_csv(100_000, Some(95_000));
        let e1 = read_text("big", bad.as_bytes(), opts).err().unwrap();
        let e2 = read_rows("big", bad.as_bytes(), opts, 0).err().unwrap();
        assert_eq!(e1.to_string(), e2.to_string());
        let line = 2 + 95_000 + 2 * (95_000 / 20_011 + 1);
        assert!(
            e1.to_string()
                .starts_with(&format!("big:{line}: field `close`")),
            "{e1}"
        );
        // Skipped instead, counted the same.
        let skip = LoadOptions {
            skip_bad_rows: true,
        };
        let p = read_text("big", bad.as_bytes(), skip).unwrap();
        let o = read_rows("big", bad.as_bytes(), skip, 0).unwrap();
        assert_eq!(
            (p.rows, p.skipped, p.bars.len()),
            (o.rows, o.skipped, o.bars.len())
        );
        assert_eq!(p.skipped, 1);

        // Blank lines or a banner before the header, and CRLF line ends (read in one pass):
        // still what one pass gives, bad row and line included.
        for before in ["\n\n", "https://www.CryptoDataDownload.com\n\n", " , \n"] {
            let t = big_csv_after(before, 100_000, Some(50_000));
            let crlf = t.replace('\n', "\r\n");
            for text in [t, crlf] {
                let e1 = read_text("big", text.as_bytes(), opts).err().unwrap();
                let e2 = read_rows("big", text.as_bytes(), opts, 0).err().unwrap();
                assert_eq!(e1.to_string(), e2.to_string(), "{before:?}");
                let p = read_text("big", text.as_bytes(), skip).unwrap();
                let o = read_rows("big", text.as_bytes(), skip, 0).unwrap();
                assert_eq!((p.rows, p.skipped), (o.rows, o.skipped), "{before:?}");
                assert_eq!((p.rows, p.skipped), (100_000, 1), "{before:?}");
                assert_eq!(p.bars, o.bars, "{before:?}");
            }
        }
    }

    #[test]
    fn a_plain_decimal_reads_bit_for_bit_as_the_full_parser_and_leaves_the_rest_to_it() {
        let texts = [
            "0",
            "1",
            "2000.0000",
            "1998.2329",
            "0.1",
            "0.3",
            "-12.5",
            "+7.25",
            "1.",
            ".5",
            "123456789.123456",
            "9007199254740992",
            "0.0000000000000001",
            "6.509",
            "3.14159265358979",
            "1999.99999999",
            "00001.100",
        ];
        for t in texts {
            let fast = plain_decimal(t.as_bytes());
            assert_eq!(
                fast.map(f64::to_bits),
                Some(t.parse::<f64>().unwrap().to_bits()),
                "{t}"
            );
        }
        // A deterministic sweep of prices with 4 decimals, as the bundled files hold.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let t = format!("{}.{:04}", x % 100_000, (x >> 20) % 10_000);
            assert_eq!(
                plain_decimal(t.as_bytes()).map(f64::to_bits),
                Some(t.parse::<f64>().unwrap().to_bits()),
                "{t}"
            );
        }
        for t in [
            "",
            "-",
            ".",
            "1e5",
            "1.2.3",
            "nan",
            "inf",
            "12345678901234567890",
            "9007199254740993",
            "0x10",
            "1,5",
            "1 2",
        ] {
            assert_eq!(plain_decimal(t.as_bytes()), None, "{t}");
        }
    }

    fn load(text: &str) -> Result<Series, DataError> {
        load_csv_bytes("t.csv", text.as_bytes(), LoadOptions::default())
    }

    const HEADER: &str = "timestamp,open,high,low,close,volume\n";

    #[test]
    fn generic_format_accepts_seconds_millis_and_iso() {
        let s = load(&format!(
            "{HEADER}1600000000,1,2,0.5,1.5,10\n1600003600000,1,2,0.5,1.5,10\n2020-09-13T14:26:40Z,1,2,0.5,1.5,10\n2020-09-13 15:26:40,1,2,0.5,1.5,1\n"
        ))
        .unwrap();
        let ts: Vec<i64> = s.bars.iter().map(|b| b.ts).collect();
        assert_eq!(
            ts,
            vec![1_600_000_000, 1_600_003_600, 1_600_007_200, 1_600_010_800]
        );
        assert_eq!(s.report.format, CsvFormat::Generic);
        assert_eq!(s.report.interval_s, 3600);
        assert_eq!(s.report.gaps, 0);
    }

    #[test]
    fn rows_are_sorted_and_duplicates_and_gaps_counted() {
        let s = load(&format!(
            "{HEADER}7200,1,1,1,1,1\n0,1,1,1,1,1\n3600,1,1,1,1,1\n3600,2,2,2,2,2\n18000,1,1,1,1,1\n21600,1,1,1,1,1\n"
        ))
        .unwrap();
        let ts: Vec<i64> = s.bars.iter().map(|b| b.ts).collect();
        assert_eq!(ts, vec![0, 3600, 7200, 18000, 21600]);
        assert!(s.report.reordered);
        assert_eq!(s.report.duplicates, 1);
        assert_eq!(
            s.bars[1].close, 1.0,
            "the first row of a duplicate pair is kept"
        );
        assert_eq!(s.report.gaps, 1);
        assert_eq!(s.report.missing_bars, 2);
    }

    fn bad_row_error(row: &str) -> String {
        load(&format!("{HEADER}0,1,1,1,1,1\n{row}\n"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn malformed_rows_name_file_line_and_field() {
        let cases = [
            ("3600,abc,1,1,1,1", "open", "not a number"),
            ("3600,1,NaN,1,1,1", "high", "not finite"),
            ("3600,1,1,1,inf,1", "close", "not finite"),
            ("3600,1,1,0,1,1", "low", "not positive"),
            ("3600,-1,1,1,1,1", "open", "not positive"),
            ("3600,1,1,2,1.5,1", "high", "below low"),
            ("3600,1,2,1,3,1", "close", "outside"),
            ("3600,1,2,1,1.5,-4", "volume", "negative"),
            ("yesterday,1,2,1,1.5,4", "timestamp", "not a unix time"),
            ("3600,1,2,1", "close", "missing"),
        ];
        for (row, field, why) in cases {
            let e = bad_row_error(row);
            assert!(e.starts_with("t.csv:3: "), "{row}: {e}");
            assert!(e.contains(&format!("`{field}`")), "{row}: {e}");
            assert!(e.contains(why), "{row}: {e}");
        }
    }

    #[test]
    fn skip_bad_rows_skips_and_counts() {
        let text =
            format!("{HEADER}0,1,1,1,1,1\n3600,x,1,1,1,1\n7200,1,1,1,1,1\n10800,1,1,1,NaN,1\n");
        let s = load_csv_bytes(
            "t.csv",
            text.as_bytes(),
            LoadOptions {
                skip_bad_rows: true,
            },
        )
        .unwrap();
        assert_eq!(s.bars.len(), 2);
        assert_eq!(s.report.rows, 4);
        assert_eq!(s.report.skipped_rows, 2);
    }

    #[test]
    fn unknown_header_and_empty_file_are_errors() {
        let e = load("a,b,c\n1,2,3\n").unwrap_err().to_string();
        assert!(
            e.contains("t.csv:1") && e.contains("unrecognised header"),
            "{e}"
        );
        assert!(matches!(load(HEADER), Err(DataError::Empty { .. })));
        assert!(matches!(load(""), Err(DataError::Empty { .. })));
    }

    #[test]
    fn cryptodatadownload_banner_and_newest_first() {
        let text = "https://www.CryptoDataDownload.com\nUnix,Date,Symbol,Open,High,Low,Close,Volume ETH,Volume USDC,tradecount\n\
1664416800000,2022-09-29 02:00:00,ETHUSDC,1345.45,1345.45,1330.58,1338.12,387.7045,519621.63249,295\n\
1664413200000,2022-09-29 01:00:00,ETHUSDC,1332.95,1351.81,1332.95,1344.24,157.3381,211650.409919,345\n";
        let s = load(text).unwrap();
        assert_eq!(s.report.format, CsvFormat::CryptoDataDownload);
        assert_eq!(s.bars[0].ts, 1_664_413_200);
        assert_eq!(s.bars[1].close, 1338.12);
        assert_eq!(s.bars[1].volume, 387.7045);
        assert!(s.report.reordered);
        let e = load(&text.replace("1338.12", "1400"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("t.csv:3: field `close`"), "{e}");
    }

    #[test]
    fn gzip_is_detected_by_magic_bytes() {
        use flate2::{Compression, write::GzEncoder};
        use std::io::Write;
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(format!("{HEADER}0,1,1,1,1,1\n").as_bytes())
            .unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(
            load_csv_bytes("t.csv.gz", &gz, LoadOptions::default())
                .unwrap()
                .bars
                .len(),
            1
        );
    }
}
