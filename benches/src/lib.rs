//! Benchmarks (`benches/benches/`), the backend-matrix tests (`tests/backends.rs`), the
//! side-by-side timing harnesses (`examples/`), `bench-table` (criterion results to markdown),
//! and the compile check of the user's guide: every `rust` code block in `docs/*.md` is a
//! doctest of this crate (`cargo test -p aigc-benches --doc`), so the guide's programs build
//! against the current API. Blocks that need a model file or a GPU are `no_run`.

use std::time::Duration;

use aigc_core::burn::tensor::Device;

/// The backends a benchmark runs on: every compiled backend that works on this machine
/// (`aigc_core::device::runnable_backends`; `--features ndarray,wgpu` adds ndarray and wgpu
/// to the default flex), each with its device and the measurement time to ask criterion for:
/// `cpu_time` on CPU backends, a shorter one on others (Mesa's software Vulkan driver is 10-100
/// times slower than flex; criterion still takes its 10 samples). Backends that cannot run
/// are named on stderr.
pub fn backends(cpu_time: Duration) -> Vec<(&'static str, Device, Duration)> {
    let runnable = aigc_core::device::runnable_backends().unwrap_or_else(|e| panic!("{e}"));
    for s in &runnable.skipped {
        eprintln!("skipped: {s}");
    }
    runnable
        .devices
        .into_iter()
        .map(|(name, device)| {
            let cpu = matches!(name, "flex" | "ndarray");
            (name, device, if cpu { cpu_time } else { Duration::from_secs(2) })
        })
        .collect()
}

/// The guide's pages, as doctests.
#[cfg(doctest)]
pub mod guide {
    #[doc = include_str!("../../docs/text.md")]
    pub mod text {}
    #[doc = include_str!("../../docs/image.md")]
    pub mod image {}
    #[doc = include_str!("../../docs/audio.md")]
    pub mod audio {}
    #[doc = include_str!("../../docs/video.md")]
    pub mod video {}
    #[doc = include_str!("../../docs/crossmodal.md")]
    pub mod crossmodal {}
    #[doc = include_str!("../../docs/formats.md")]
    pub mod formats {}
    #[doc = include_str!("../../docs/getting-started.md")]
    pub mod getting_started {}
    #[doc = include_str!("../../docs/concepts.md")]
    pub mod concepts {}
    #[doc = include_str!("../../docs/code.md")]
    pub mod code {}
    #[doc = include_str!("../../docs/3d-and-games.md")]
    pub mod three_d_and_games {}
    #[doc = include_str!("../../docs/models.md")]
    pub mod models {}
    #[doc = include_str!("../../docs/gpu.md")]
    pub mod gpu {}
    #[doc = include_str!("../../README.md")]
    pub mod readme {}
}
