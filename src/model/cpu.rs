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
