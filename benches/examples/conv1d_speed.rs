//! Times HiFi-GAN-shaped 1-D convolutions (best of N): `conv1d_speed [RUNS]`.
use std::time::Instant;

use aigc_core::burn::tensor::{Tensor, TensorData};
use aigc_core::layers::{Conv1d, LeakyRelu};

fn main() {
    let runs: usize = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(20);
    let device = aigc_core::device_from_env().unwrap();
    let shapes = [
        (32, 32, 25344, 7, 3),
        (32, 32, 25344, 3, 1),
        (64, 64, 6336, 5, 2),
        (128, 128, 792, 3, 1),
        (192, 384, 99, 5, 1),
        (192, 192, 57, 1, 1),
        (192, 768, 57, 3, 1),
        (768, 192, 57, 3, 1),
    ];
    for (c, out, t, k, d) in shapes {
        let vals =
            |n: usize| (0..n).map(|i| ((i * 7) % 97) as f32 / 97.0 - 0.4).collect::<Vec<_>>();
        let x = Tensor::<3>::from_data(TensorData::new(vals(c * t), [1, c, t]), &device);
        let w = Tensor::<3>::from_data(TensorData::new(vals(out * c * k), [out, c, k]), &device);
        let b = Tensor::<1>::from_data(TensorData::new(vals(out), [out]), &device);
        let conv = Conv1d::new(w, Some(b), d * (k - 1) / 2, d, 1);
        let pre = Some(LeakyRelu::new(0.1));
        let _ = conv.forward_with(x.clone(), pre, None);
        let mut best = f64::MAX;
        for _ in 0..runs {
            let s = Instant::now();
            let y = conv.forward_with(x.clone(), pre, None);
            drop(y);
            best = best.min(s.elapsed().as_secs_f64());
        }
        let flops = 2.0 * (out * c * k * t) as f64;
        println!("c{c} o{out} t{t} k{k}: {:.3} ms, {:.1} GFLOP/s", best * 1e3, flops / best / 1e9);
    }
}
