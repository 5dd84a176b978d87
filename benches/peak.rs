//! The f32 peak this machine sustains, measured (a fused multiply-add loop on every core at
//! once): `cargo bench --bench peak`. `bench/compare.py` reports percentages of it. Prints one
//! JSON line.

use tms::model::cpu::measure_fma_peak;

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_core: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..cores)
            .map(|_| s.spawn(|| measure_fma_peak(0.5)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("peak thread"))
            .collect()
    });
    let total: f64 = per_core.iter().map(|p| p.gflops).sum();
    println!(
        "{{\"cores\": {cores}, \"isa\": \"{}\", \"gflops_per_core\": {:.1}, \"gflops\": {:.1}}}",
        per_core[0].isa,
        total / cores as f64,
        total
    );
}
