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

use burn::tensor::{Device, DeviceKind};

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
    let target = match (backend, rest.as_slice()) {
        ("flex", []) => Target::Flex,
        ("ndarray", []) => Target::NdArray,
        ("flex" | "ndarray", _) => return Err(bad(format!("{backend} takes no device index"))),
        ("wgpu", rest) => Target::Wgpu(match rest {
            [] => DeviceKind::DefaultDevice,
            ["cpu"] => DeviceKind::Cpu,
            ["discrete", i] => DeviceKind::DiscreteGpu(index(i)?),
            ["integrated", i] => DeviceKind::IntegratedGpu(index(i)?),
            ["virtual", i] => DeviceKind::VirtualGpu(index(i)?),
            _ => {
                return Err(bad(
                    "expected wgpu, wgpu:cpu or wgpu:discrete|integrated|virtual:N".into()
                ));
            }
        }),
        ("cuda", []) => Target::Cuda(0),
        ("cuda", [i]) => Target::Cuda(index(i)?),
        ("cuda", _) => return Err(bad("expected cuda or cuda:N".into())),
        _ => unreachable!("backend names come from BACKENDS"),
    };
    target.create(feature)
}

/// A validated device name.
#[allow(dead_code)] // a variant's field is read only when its backend is compiled in
enum Target {
    Flex,
    NdArray,
    Wgpu(DeviceKind),
    Cuda(usize),
}

impl Target {
    fn backend(&self) -> &'static str {
        match self {
            Target::Flex => "flex",
            Target::NdArray => "ndarray",
            Target::Wgpu(_) => "wgpu",
            Target::Cuda(_) => "cuda",
        }
    }

    /// The device, when its backend is compiled in.
    fn create(self, feature: &'static str) -> Result<Device> {
        match self {
            #[cfg(feature = "flex")]
            Target::Flex => Ok(Device::flex()),
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)] // burn marks ndarray deprecated; we still test on it
            Target::NdArray => Ok(Device::ndarray()),
            #[cfg(feature = "wgpu")]
            Target::Wgpu(kind) => Ok(Device::wgpu(kind)),
            #[cfg(feature = "cuda")]
            Target::Cuda(i) => Ok(Device::cuda(i)),
            #[allow(unreachable_patterns)] // every arm is compiled in with all features
            other => Err(Error::BackendNotCompiled { backend: other.backend().into(), feature }),
        }
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

/// A compiled backend and whether it can run here: [`probe_backends`]'s answer.
#[derive(Debug, Clone)]
pub struct BackendProbe {
    /// The backend's name, as [`parse_device`] takes it.
    pub name: &'static str,
    /// Its device, or why it cannot run (no GPU, no Vulkan driver, ...).
    pub device: std::result::Result<Device, String>,
}

impl BackendProbe {
    /// Whether the environment demands this backend (`AIGC_REQUIRE_WGPU=1` for `wgpu`, and so
    /// on: CI sets it where it installed a driver), so that a failed probe is an error rather
    /// than a skip.
    pub fn required(&self) -> bool {
        let var = format!("AIGC_REQUIRE_{}", self.name.to_ascii_uppercase());
        std::env::var(var).is_ok_and(|v| v == "1")
    }
}

/// Every compiled backend, each tried on a small sum: the backends that work get their device.
/// Code that runs the same work on every backend (the backend-matrix tests, the benchmarks)
/// starts here. A backend whose device panics (a wgpu build on a machine without a Vulkan
/// driver) is caught and reported in [`BackendProbe::device`].
pub fn probe_backends() -> Vec<BackendProbe> {
    compiled_backends()
        .into_iter()
        .map(|name| {
            let device = parse_device(name).map_err(|e| e.to_string()).and_then(|device| {
                let probe = device.clone();
                let sum = std::panic::catch_unwind(move || {
                    let v = vec![1.0f32, 2.0];
                    let t = burn::tensor::Tensor::<1>::from_data(
                        burn::tensor::TensorData::new(v, [2]),
                        &probe,
                    );
                    t.sum().into_scalar::<f32>()
                });
                match sum {
                    Ok(3.0) => Ok(device),
                    Ok(other) => Err(format!("1 + 2 = {other}")),
                    Err(panic) => Err(panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "the device panicked".into())),
                }
            });
            BackendProbe { name, device }
        })
        .collect()
}

/// [`runnable_backends`]'s answer.
#[derive(Debug, Clone, Default)]
pub struct RunnableBackends {
    /// The backends that work here, by name, with their devices.
    pub devices: Vec<(&'static str, Device)>,
    /// A line for each compiled backend that cannot run here, for the caller to report.
    pub skipped: Vec<String>,
}

/// The devices of [`probe_backends`] that work, and a line for each compiled backend that
/// cannot run here. A backend the environment requires ([`BackendProbe::required`]) that
/// cannot run is an error instead.
pub fn runnable_backends() -> Result<RunnableBackends> {
    let (mut ok, mut skipped) = (Vec::new(), Vec::new());
    for probe in probe_backends() {
        let required = probe.required();
        match probe.device {
            Ok(device) => ok.push((probe.name, device)),
            Err(why) => {
                let msg = format!("backend {} is compiled in but cannot run: {why}", probe.name);
                if required {
                    let var = format!("AIGC_REQUIRE_{}=1", probe.name.to_ascii_uppercase());
                    return Err(Error::invalid_argument("device", format!("{msg} ({var})")));
                }
                skipped.push(msg);
            }
        }
    }
    Ok(RunnableBackends { devices: ok, skipped })
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

/// Lets glibc's allocator keep freed blocks of up to 32 MiB for reuse (and keep up to
/// 128 MiB of free memory before trimming), once per process; a no-op elsewhere or when
/// `AIGC_MALLOC_TUNING=0`. The CPU kernels call it before their first job.
///
/// A CPU forward pass allocates every activation afresh. By default glibc serves blocks from
/// 128 KiB upwards (the limit grows only past the largest block freed so far) with `mmap`
/// and returns them to the system when they are freed, so each layer's output is written
/// into fresh zeroed pages, one page fault per 4 KiB: a vocoder's 3 MB activations spent
/// as long in the kernel as in the convolution. Inference engines keep an arena for this
/// (onnxruntime's allocator, llama.cpp's graph buffers); this is the process-wide
/// equivalent for code whose tensors burn allocates.
pub fn tune_allocator() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var("AIGC_MALLOC_TUNING").is_ok_and(|v| v == "0") {
            return;
        }
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            unsafe extern "C" {
                fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
            }
            const M_TRIM_THRESHOLD: std::ffi::c_int = -1;
            const M_MMAP_THRESHOLD: std::ffi::c_int = -3;
            // SAFETY: mallopt only changes the allocator's thresholds; it is thread-safe.
            unsafe {
                mallopt(M_MMAP_THRESHOLD, 32 << 20);
                mallopt(M_TRIM_THRESHOLD, 128 << 20);
            }
        }
    });
}
