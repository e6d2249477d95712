//! Lists the backends compiled into this build and whether each can run here, with the
//! device's description (for GPU backends, the adapter's name: `llvmpipe` is Mesa's software
//! Vulkan driver).
//!
//! ```text
//! cargo run -p aigc-core --features ndarray,wgpu --example devices
//! ```
//!
//! Exits with an error when a backend that the environment requires (`AIGC_REQUIRE_WGPU=1`)
//! cannot run.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut failed = false;
    for probe in aigc_core::device::probe_backends() {
        match &probe.device {
            Ok(device) => {
                println!("{:8} runs: {}", probe.name, aigc_core::device::describe(device))
            }
            Err(why) => {
                let required = if probe.required() { " (required)" } else { "" };
                println!("{:8} cannot run{required}: {why}", probe.name);
                failed |= probe.required();
            }
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
