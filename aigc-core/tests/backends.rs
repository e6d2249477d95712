//! The same weights and operations on every compiled backend agree with flex.
//!
//! Backends come from the build's features (`--features ndarray,wgpu`). A wgpu device needs a
//! Vulkan (or Metal/DX12) driver; without one this test says so and skips it, unless
//! `AIGC_REQUIRE_WGPU=1` (set by CI, which installs Mesa's software Vulkan driver).

mod common;

use aigc_core::burn::tensor::{Device, Tensor, activation};
use aigc_core::device::describe;
use aigc_core::quant::GgmlType;
use aigc_core::weights::TensorView;

/// Every compiled backend's device that can run a small op.
fn devices() -> Vec<(&'static str, Device)> {
    let aigc_core::device::RunnableBackends { devices, skipped } =
        aigc_core::device::runnable_backends().unwrap();
    skipped.iter().for_each(|s| eprintln!("\n**** SKIPPED: {s} ****\n"));
    devices.iter().for_each(|(name, d)| eprintln!("backend {name}: {}", describe(d)));
    devices
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap()
}

/// Q4_K blocks from the dequantization fixtures, as a [8, 512] tensor view.
fn q4k_view() -> TensorView<'static> {
    let bytes = std::fs::read(common::fixtures().join("gguf/Q4_K.q")).unwrap();
    TensorView::new("q4k", aigc_core::weights::DType::Quant(GgmlType::Q4_K), vec![8, 512], bytes)
        .unwrap()
}

#[test]
fn weights_and_ops_agree_across_backends() {
    let view = q4k_view();
    let exact = view.to_f32().unwrap();
    // Keeps the logits within a few tens, so that softmax is not one-hot.
    let scale = exact.iter().fold(0f32, |m, v| m.max(v.abs())).powi(2) * 8.0;
    let reference = {
        let flex = aigc_core::parse_device("flex").unwrap();
        let w = view.to_tensor::<2>(&flex).unwrap();
        let x = w.clone().slice([0..4, 0..512]);
        let y = activation::softmax(x.matmul(w.transpose()) / scale, 1);
        to_vec(y)
    };
    for (name, device) in devices() {
        let w = view.to_tensor::<2>(&device).unwrap();
        assert_eq!(to_vec(w.clone()), exact, "{name}: loaded weights differ");
        let x = w.clone().slice([0..4, 0..512]);
        let y = to_vec(activation::softmax(x.matmul(w.transpose()) / scale, 1));
        let max = y.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(max <= 1e-4, "{name}: softmax(x w^T) differs from flex by {max}");
    }
}
