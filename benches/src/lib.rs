//! Benchmarks (`benches/benches/`), the backend-matrix tests (`tests/backends.rs`), the
//! side-by-side timing harnesses (`examples/`), `bench-table` (criterion results to markdown),
//! and the compile check of the user's guide: every `rust` code block in `docs/*.md` is a
//! doctest of this crate (`cargo test -p aigc-benches --doc`), so the guide's programs build
//! against the current API. Blocks that need a model file or a GPU are `no_run`.

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
