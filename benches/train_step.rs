//! One training step (sample → forward → backward → AdamW) of one instance, per config,
//! kernel variant and training pass (the fused kernel, and the pass `auto` picks). Run: `cargo bench --bench train_step`.
//!
//! Throughput is reported in batch elements (rows × features) per second; multiply the time
//! by the number of instances and steps to estimate a run on one core.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;

use tms::config::{InstanceSpec, KernelChoice, TrainSettings};
use tms::model::{ModelKind, Shape};
use tms::train::{InstanceTrainer, KernelVariant, TrainPass};

/// (name, n, m, batch, feature probability): the shapes of the paper experiments.
const CONFIGS: [(&str, usize, usize, usize, f32); 5] = [
    ("intro", 5, 2, 1024, 0.1),
    ("wtw", 20, 5, 1024, 0.1),
    ("sweep-100", 100, 20, 1024, 0.1),
    ("uniform", 400, 30, 1024, 0.1),
    ("phase", 2, 1, 1024, 0.1),
];

fn bench_steps(c: &mut Criterion) {
    let mut group = c.benchmark_group("train_step");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    let mut variants = vec![KernelVariant::Portable];
    if KernelVariant::detect() != KernelVariant::Portable {
        variants.push(KernelVariant::detect());
    }
    for (name, n, m, batch, p) in CONFIGS {
        let shape = Shape {
            kind: ModelKind::ReluOutput,
            features: n,
            hidden: m,
        };
        let settings = TrainSettings {
            batch_size: batch,
            ..TrainSettings::default()
        };
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
        group.throughput(Throughput::Elements((batch * n) as u64));
        // The fused kernel everywhere, and the pass `auto` picks where it is another.
        let mut kernels = vec![KernelChoice::Fused];
        if TrainPass::choose(KernelChoice::Auto, &shape, &spec) != TrainPass::Fused {
            kernels.push(KernelChoice::Auto);
        }
        for kernel in kernels {
            let settings = TrainSettings {
                kernel,
                ..settings.clone()
            };
            let pass = TrainPass::choose(kernel, &shape, &spec);
            for &variant in &variants {
                let mut trainer = InstanceTrainer::new(shape, &settings, spec.clone(), 1);
                let id = format!("{}/{}", variant.name(), pass.name());
                group.bench_function(BenchmarkId::new(name, id), |b| {
                    b.iter(|| trainer.step(&settings, variant))
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench_steps);
criterion_main!(benches);
