//! Which compiled version of the hot loops runs on this CPU.

/// Which compiled version of the hot loops runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelVariant {
    /// Baseline for the target (SSE2 on x86-64).
    Portable,
    /// x86-64 with AVX2 and FMA, chosen at run time.
    Avx2,
}

impl KernelVariant {
    /// The best variant this CPU supports (set `TMS_KERNEL=portable` to force the baseline).
    pub fn detect() -> Self {
        if std::env::var("TMS_KERNEL").as_deref() == Ok("portable") {
            return KernelVariant::Portable;
        }
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return KernelVariant::Avx2;
            }
        }
        KernelVariant::Portable
    }

    /// `self` if this CPU can run it, else [`KernelVariant::Portable`]. The enum is public, so
    /// safe code can name `Avx2` on any CPU: every dispatch goes through this check (a cached
    /// feature test, once per call of a whole chunk or run, never per element).
    #[inline]
    pub fn checked(self) -> Self {
        match self {
            #[cfg(target_arch = "x86_64")]
            KernelVariant::Avx2
                if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") =>
            {
                KernelVariant::Avx2
            }
            _ => KernelVariant::Portable,
        }
    }

    /// Run `f` compiled for this variant: for [`KernelVariant::Avx2`] inside a function that
    /// enables AVX2 and FMA, so the loops `f` inlines (mark them `#[inline(always)]`) are
    /// vectorised for them. Rust never fuses a multiply and an add on its own, so both
    /// variants give the same bits for the same operations in the same order.
    #[inline(always)]
    pub fn run<R>(self, f: impl FnOnce() -> R) -> R {
        match self.checked() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `checked` returned Avx2, so this CPU has AVX2 and FMA.
            KernelVariant::Avx2 => unsafe { run_avx2(f) },
            _ => f(),
        }
    }

    /// Name for logs and benchmarks.
    pub fn name(self) -> &'static str {
        match self {
            KernelVariant::Portable => "portable",
            KernelVariant::Avx2 => "avx2+fma",
        }
    }
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// The f32 peak of one core, measured: a loop of independent fused multiply-adds in the widest
/// vectors this CPU has (AVX-512, else AVX2 + FMA), doubled in length until one run lasts at
/// least `seconds / 4`. `bench/` reports
/// percentages of this (times the cores), not of an assumed FLOP-per-cycle figure.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FmaPeak {
    /// Measured GFLOP/s of one core (a multiply-add counts 2).
    pub gflops: f64,
    /// The vector instructions used: `"avx512f"`, `"avx2+fma"` or `"none"` (no FMA: 0).
    pub isa: &'static str,
}

/// Measure [`FmaPeak`] on the calling thread.
pub fn measure_fma_peak(seconds: f64) -> FmaPeak {
    #[cfg(target_arch = "x86_64")]
    {
        let (isa, lanes): (&'static str, f64) = if is_x86_feature_detected!("avx512f") {
            ("avx512f", 16.0)
        } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            ("avx2+fma", 8.0)
        } else {
            return FmaPeak {
                gflops: 0.0,
                isa: "none",
            };
        };
        let run = |iterations: u64| {
            let start = std::time::Instant::now();
            // SAFETY: each loop runs only on a CPU where its features were detected above.
            let sink = unsafe {
                if lanes == 16.0 {
                    fma_loop_avx512(iterations)
                } else {
                    fma_loop_avx2(iterations)
                }
            };
            std::hint::black_box(sink);
            start.elapsed().as_secs_f64()
        };
        let mut iterations = 1u64 << 16;
        let mut elapsed = run(iterations);
        while elapsed < seconds / 4.0 {
            iterations *= 2;
            elapsed = run(iterations);
        }
        let flops = iterations as f64 * FMA_CHAINS as f64 * lanes * 2.0;
        FmaPeak {
            gflops: flops / elapsed / 1e9,
            isa,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = seconds;
        FmaPeak {
            gflops: 0.0,
            isa: "none",
        }
    }
}

/// Independent accumulator chains of the peak loops: more than FMA latency × pipes (4 × 2 on
/// current x86 cores), so the loop is bound by throughput.
const FMA_CHAINS: usize = 12;

/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_loop_avx512(iterations: u64) -> f32 {
    use std::arch::x86_64::*;
    let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
    let mut acc = [_mm512_set1_ps(1.0); FMA_CHAINS];
    for _ in 0..iterations {
        for v in acc.iter_mut() {
            *v = _mm512_fmadd_ps(*v, a, b);
        }
    }
    acc.iter().map(|&v| _mm512_reduce_add_ps(v)).sum()
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_loop_avx2(iterations: u64) -> f32 {
    use std::arch::x86_64::*;
    let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    let mut acc = [_mm256_set1_ps(1.0); FMA_CHAINS];
    for _ in 0..iterations {
        for v in acc.iter_mut() {
            *v = _mm256_fmadd_ps(*v, a, b);
        }
    }
    let mut lanes = [0.0f32; 8];
    let mut total = 0.0;
    for &v in &acc {
        _mm256_storeu_ps(lanes.as_mut_ptr(), v);
        total += lanes.iter().sum::<f32>();
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_measured_peak_is_positive_where_there_is_fma() {
        let peak = measure_fma_peak(0.01);
        if peak.isa != "none" {
            assert!(peak.gflops > 1.0, "{peak:?}");
        }
    }
}
