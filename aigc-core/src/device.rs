//! Choosing a burn [`Device`] by name.
//!
//! burn 0.22 dispatches at run time: the same model code runs on whichever backend its
//! tensors' device belongs to. A backend exists only when its cargo feature is compiled in:
//! `flex` (default, pure-Rust CPU), `ndarray` (CPU, deprecated upstream), `wgpu` (Vulkan,
//! Metal, DX12; also Mesa's software Vulkan) and `cuda`.
//!
//! ```
//! let device = aigc_core::parse_device("flex")?;
//! # Ok::<(), aigc_core::Error>(())
//! ```

use burn::tensor::Device;

use crate::error::{Error, Result};

/// The environment variable that [`device_from_env`] reads.
pub const DEVICE_ENV: &str = "AIGC_DEVICE";

/// The backends a device name can select, with the cargo feature that compiles each in.
pub const BACKENDS: &[(&str, &str)] =
    &[("flex", "flex"), ("ndarray", "ndarray"), ("wgpu", "wgpu"), ("cuda", "cuda")];

/// Names of the backends compiled into this build, in [`BACKENDS`] order.
pub fn compiled_backends() -> Vec<&'static str> {
    let mut out = Vec::new();
    if cfg!(feature = "flex") {
        out.push("flex");
    }
    if cfg!(feature = "ndarray") {
        out.push("ndarray");
    }
    if cfg!(feature = "wgpu") {
        out.push("wgpu");
    }
    if cfg!(feature = "cuda") {
        out.push("cuda");
    }
    out
}

/// The device name used when none is given: the first CPU backend compiled in (`flex`, then
/// `ndarray`), else the first GPU backend. Unlike burn's `Device::default()`, a build with
/// `wgpu` enabled still defaults to the CPU, so adding a feature never silently moves work.
pub fn default_device_name() -> &'static str {
    compiled_backends().first().copied().unwrap_or("flex")
}

/// Parses a device name into a burn [`Device`].
///
/// Accepted names: `flex`, `ndarray`, `wgpu` (the best adapter), `wgpu:cpu`,
/// `wgpu:discrete:N`, `wgpu:integrated:N`, `wgpu:virtual:N`, `cuda` (GPU 0) and `cuda:N`.
/// A backend that is not compiled in gives [`Error::BackendNotCompiled`], naming the feature.
pub fn parse_device(name: &str) -> Result<Device> {
    let name = name.trim();
    let lower = name.to_ascii_lowercase();
    let mut parts = lower.split(':');
    let backend = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    let bad = |reason: String| Error::invalid_argument("device", format!("`{name}`: {reason}"));
    let index =
        |s: &str| s.parse::<usize>().map_err(|_| bad(format!("`{s}` is not a device index")));
    let Some(&(_, feature)) = BACKENDS.iter().find(|(b, _)| *b == backend) else {
        let known: Vec<&str> = BACKENDS.iter().map(|(b, _)| *b).collect();
        return Err(bad(format!("unknown backend; expected one of {}", known.join(", "))));
    };
    let not_compiled = || Error::BackendNotCompiled { backend: backend.to_string(), feature };
    match backend {
        "flex" => {
            if !rest.is_empty() {
                return Err(bad("flex takes no device index".into()));
            }
            #[cfg(feature = "flex")]
            return Ok(Device::flex());
            #[cfg(not(feature = "flex"))]
            return Err(not_compiled());
        }
        "ndarray" => {
            if !rest.is_empty() {
                return Err(bad("ndarray takes no device index".into()));
            }
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)] // burn marks ndarray deprecated; we still test on it
            return Ok(Device::ndarray());
            #[cfg(not(feature = "ndarray"))]
            return Err(not_compiled());
        }
        "wgpu" => {
            use burn::tensor::DeviceKind;
            let kind = match rest.as_slice() {
                [] => DeviceKind::DefaultDevice,
                ["cpu"] => DeviceKind::Cpu,
                ["discrete", i] => DeviceKind::DiscreteGpu(index(i)?),
                ["integrated", i] => DeviceKind::IntegratedGpu(index(i)?),
                ["virtual", i] => DeviceKind::VirtualGpu(index(i)?),
                _ => {
                    return Err(bad(
                        "expected wgpu, wgpu:cpu or wgpu:discrete|integrated|virtual:N".into(),
                    ));
                }
            };
            #[cfg(feature = "wgpu")]
            return Ok(Device::wgpu(kind));
            #[cfg(not(feature = "wgpu"))]
            {
                let _ = kind;
                return Err(not_compiled());
            }
        }
        "cuda" => {
            let i = match rest.as_slice() {
                [] => 0,
                [i] => index(i)?,
                _ => return Err(bad("expected cuda or cuda:N".into())),
            };
            #[cfg(feature = "cuda")]
            return Ok(Device::cuda(i));
            #[cfg(not(feature = "cuda"))]
            {
                let _ = i;
                return Err(not_compiled());
            }
        }
        _ => unreachable!("backend names come from BACKENDS"),
    }
}

/// The device named by `AIGC_DEVICE`, or [`default_device_name`] when it is unset or empty.
pub fn device_from_env() -> Result<Device> {
    match std::env::var(DEVICE_ENV) {
        Ok(name) if !name.trim().is_empty() => parse_device(&name),
        _ => parse_device(default_device_name()),
    }
}

/// The device named by `arg` when given, else by `AIGC_DEVICE`, else the default.
pub fn device_from_arg_or_env(arg: Option<&str>) -> Result<Device> {
    match arg {
        Some(name) => parse_device(name),
        None => device_from_env(),
    }
}

/// A one-line description of a device: its backend and, for GPU backends, the adapter's own
/// name (for instance `llvmpipe (LLVM 15.0.6, 256 bits)` for Mesa's software Vulkan driver).
pub fn describe(device: &Device) -> String {
    // Only the CubeCL backends (wgpu, cuda) report an identity.
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    if let Some(id) = device.identity() {
        return format!("{device:?} on {}", id.name);
    }
    format!("{device:?}")
}
