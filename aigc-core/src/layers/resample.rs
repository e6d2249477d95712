//! The resolution changes and skip joins of UNets: nearest 2x upsampling, 2x2 average
//! pooling and concatenation along channels. On a CPU device each runs on the host with its
//! planes split across the kernel threads (burn's versions run on one thread).

use burn::tensor::Tensor;

use crate::quant::kernels::{SharedMut, for_each_unit};

/// Planes of at least this many values are worth a thread each.
const PARALLEL_MIN: usize = 1 << 15;

/// Nearest-neighbour upsampling by 2 (`[b, c, h, w]` to `[b, c, 2h, 2w]`), each value
/// repeated in a 2x2 square, as `F.interpolate(scale_factor=2.0, mode="nearest")`.
pub fn upsample_nearest2x(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    if !super::is_cpu(&x.device()) {
        return x.reshape([b, c, h, 1, w, 1]).expand([b, c, h, 2, w, 2]).reshape([
            b,
            c,
            2 * h,
            2 * w,
        ]);
    }
    let device = x.device();
    let src = super::to_host(x);
    let mut y = vec![0f32; src.len() * 4];
    let dst = SharedMut::new(&mut y);
    for_each_unit(src.len() >= PARALLEL_MIN, b * c, &|plane| {
        // SAFETY: plane `plane` of the output belongs to this unit alone.
        let out = unsafe { dst.slice(plane * 4 * h * w, 4 * h * w) };
        for (row, pair) in
            src[plane * h * w..][..h * w].chunks_exact(w).zip(out.chunks_exact_mut(4 * w))
        {
            let (top, bottom) = pair.split_at_mut(2 * w);
            for (o, &v) in top.chunks_exact_mut(2).zip(row) {
                o.fill(v);
            }
            bottom.copy_from_slice(top);
        }
    });
    super::from_host(y, [b, c, 2 * h, 2 * w], &device)
}

/// 2x2 average pooling with stride 2 (`[b, c, h, w]` to `[b, c, h/2, w/2]`, an odd last row
/// or column dropped), as `F.avg_pool2d(x, 2)`.
pub fn avg_pool2x2(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let (ho, wo) = (h / 2, w / 2);
    if !super::is_cpu(&x.device()) {
        use burn::tensor::module::avg_pool2d;
        use burn::tensor::ops::AvgPoolOptions;
        return avg_pool2d(x, AvgPoolOptions::new([2, 2]));
    }
    let device = x.device();
    let src = super::to_host(x);
    let mut y = vec![0f32; b * c * ho * wo];
    let dst = SharedMut::new(&mut y);
    for_each_unit(src.len() >= PARALLEL_MIN, b * c, &|plane| {
        // SAFETY: plane `plane` of the output belongs to this unit alone.
        let out = unsafe { dst.slice(plane * ho * wo, ho * wo) };
        let inp = &src[plane * h * w..][..h * w];
        for (oy, orow) in out.chunks_exact_mut(wo).enumerate() {
            let (r0, r1) = (&inp[2 * oy * w..][..w], &inp[(2 * oy + 1) * w..][..w]);
            for (ox, o) in orow.iter_mut().enumerate() {
                *o = (r0[2 * ox] + r0[2 * ox + 1] + r1[2 * ox] + r1[2 * ox + 1]) * 0.25;
            }
        }
    });
    super::from_host(y, [b, c, ho, wo], &device)
}

/// `a` and `b` (`[n, ca, h, w]` and `[n, cb, h, w]`) joined along the channels.
pub fn cat_channels(a: Tensor<4>, b: Tensor<4>) -> Tensor<4> {
    let ([n, ca, h, w], [nb, cb, hb, wb]) = (a.dims(), b.dims());
    if !super::is_cpu(&a.device()) || [n, h, w] != [nb, hb, wb] {
        return Tensor::cat(vec![a, b], 1);
    }
    let device = a.device();
    let plane = h * w;
    let channels = ca + cb;
    let mut y = vec![0f32; n * channels * plane];
    let dst = SharedMut::new(&mut y);
    super::with_host(&a, |a| {
        super::with_host(&b, |b| {
            for_each_unit(n * channels * plane >= PARALLEL_MIN, n * channels, &|unit| {
                let (item, ch) = (unit / channels, unit % channels);
                let src = if ch < ca {
                    &a[(item * ca + ch) * plane..][..plane]
                } else {
                    &b[(item * cb + ch - ca) * plane..][..plane]
                };
                // SAFETY: channel `ch` of item `item` belongs to this unit alone.
                unsafe { dst.slice(unit * plane, plane) }.copy_from_slice(src);
            })
        })
    });
    super::from_host(y, [n, channels, h, w], &device)
}

#[cfg(test)]
mod tests {
    use burn::tensor::TensorData;

    use super::*;

    fn input(dims: [usize; 4]) -> Tensor<4> {
        let n = dims.iter().product();
        let d = crate::parse_device("flex").unwrap();
        Tensor::from_data(TensorData::new((0..n).map(|i| i as f32 * 0.5).collect(), dims), &d)
    }

    #[test]
    fn host_paths_match_burns_ops() {
        let x = input([2, 3, 5, 7]);
        let want = x
            .clone()
            .reshape([2, 3, 5, 1, 7, 1])
            .expand([2, 3, 5, 2, 7, 2])
            .reshape([2, 3, 10, 14]);
        assert_eq!(
            super::super::to_host(upsample_nearest2x(x.clone())),
            super::super::to_host(want)
        );
        let want = burn::tensor::module::avg_pool2d(
            x.clone(),
            burn::tensor::ops::AvgPoolOptions::new([2, 2]),
        );
        assert_eq!(want.dims(), [2, 3, 2, 3]);
        let (got, want) =
            (super::super::to_host(avg_pool2x2(x.clone())), super::super::to_host(want));
        assert!(got.iter().zip(&want).all(|(g, w)| (g - w).abs() < 1e-5), "{got:?} vs {want:?}");
        let y = input([2, 4, 5, 7]);
        let want = Tensor::cat(vec![x.clone(), y.clone()], 1);
        assert_eq!(super::super::to_host(cat_channels(x, y)), super::super::to_host(want));
    }
}
