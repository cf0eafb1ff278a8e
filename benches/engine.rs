//! Backtest throughput of ema_cross through the real engine path (loop, gate, paper venue,
//! portfolio). `cargo bench --bench engine`; `defai bench` prints the ≥ 1M-bar figure.

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use defai::bench::{bench_config, repeat_bars};
use defai::config::Config;
use defai::core::Bar;
use defai::engine::{self, RunSpec};

fn backtest(c: &mut Criterion) {
    let bundled = engine::load_data(&Config::default(), None, false).expect("bundled data");
    let big: Arc<[Bar]> = repeat_bars(&bundled.bars, 1_000_000).into();
    let small: Arc<[Bar]> = bundled.bars.clone().into();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("backtest_ema_cross");
    g.sample_size(10);
    for (name, bars) in [("bundled_33k", &small), ("repeated_1m", &big)] {
        g.throughput(Throughput::Elements(bars.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(engine::run_shared(
                    RunSpec::backtest(bench_config()),
                    bars.clone(),
                    &bundled.report,
                ))
                .expect("run")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, backtest);
criterion_main!(benches);
