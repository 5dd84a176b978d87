//! Evaluation (`final_loss`): the loss of trained weights on fresh batches, per config. Run:
//! `cargo bench --bench evaluate`.
//!
//! One iteration evaluates 16 batches of 1024 rows of one instance (the real evaluation uses
//! 2^18 rows, 256 batches: multiply by 16).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;

use tms::config::{InstanceSpec, TrainSettings};
use tms::model::{ModelKind, Shape};
use tms::train::{evaluate, init_params};

/// (name, n, m, feature probability): the shapes of the paper experiments.
const CONFIGS: [(&str, usize, usize, f32); 3] = [
    ("intro", 5, 2, 0.1),
    ("sweep-100", 100, 20, 0.1),
    ("uniform", 400, 30, 0.1),
];

fn bench_evaluate(c: &mut Criterion) {
    let mut group = c.benchmark_group("evaluate");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    let batches = 16;
    for (name, n, m, p) in CONFIGS {
        let shape = Shape {
            kind: ModelKind::ReluOutput,
            features: n,
            hidden: m,
        };
        let settings = TrainSettings::default();
        let spec = InstanceSpec {
            index: 0,
            kind: ModelKind::ReluOutput,
            restart: 0,
            hidden_l1: 0.0,
            adversarial_radius: 0.0,
            feature_probability: vec![p; n],
            importance: vec![1.0; n],
            data: Default::default(),
        };
        let params = init_params(&shape, settings.init, 1, 7);
        group.throughput(Throughput::Elements((batches * 1024 * n) as u64));
        group.bench_function(BenchmarkId::new(name, "16x1024 rows"), |b| {
            b.iter(|| evaluate(shape, &settings, &spec, &params, batches))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_evaluate);
criterion_main!(benches);
