//! The dense stride-1 1-D convolution of vocoders and WaveNets as a direct AVX2 kernel:
//! a block of four or six output channels times sixteen positions accumulates in
//! registers over every input channel and tap of a zero-padded copy of the input, with the
//! weights packed once at load. The copy applies an optional scale and leaky ReLU (the
//! activation before each HiFi-GAN convolution) and the store adds an optional residual.

use crate::quant::kernels::SharedMut;

/// The most positions in one unit of work.
const POSITIONS_PER_UNIT: usize = 512;

/// Register blocking: `(output channels, runs of eight positions)`. Six by two (twelve
/// accumulators) unless the channels come in fours and not sixes (32, 64, ...), where six
/// would leave a block partly empty; four by two keeps eight accumulators, enough to cover
/// the FMA latency (four by three spilled registers).
fn blocking(out: usize) -> (usize, usize) {
    if !out.is_multiple_of(6) && out.is_multiple_of(4) { (4, 2) } else { (6, 2) }
}

/// Weights `[out, inp, k]` repacked per block of `ob` output channels as `[inp][k][ob]`
/// (zeros past the last channel).
#[derive(Debug, Clone)]
pub(super) struct Packed1d {
    data: Vec<f32>,
    out: usize,
    inp: usize,
    k: usize,
    ob: usize,
    runs: usize,
}

impl Packed1d {
    /// Packs `weight` (`[out, inp, k]`, row-major).
    pub(super) fn new(weight: &[f32], out: usize, inp: usize, k: usize) -> Self {
        let (ob, runs) = blocking(out);
        let blocks = out.div_ceil(ob);
        let mut data = vec![0f32; blocks * inp * k * ob];
        for o in 0..out {
            let (b, lane) = (o / ob, o % ob);
            for i in 0..inp {
                for j in 0..k {
                    data[((b * inp + i) * k + j) * ob + lane] = weight[(o * inp + i) * k + j];
                }
            }
        }
        Self { data, out, inp, k, ob, runs }
    }

    /// Whether the kernel can run on this CPU (AVX2 and FMA).
    pub(super) fn usable() -> bool {
        crate::quant::kernels::has_avx2()
    }
}

/// How the input is transformed as it is copied: `v * scale`, then a leaky ReLU of `slope`
/// where given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Prologue {
    pub scale: f32,
    pub leaky_relu: Option<f32>,
}

impl Prologue {
    pub(super) const IDENTITY: Self = Self { scale: 1.0, leaky_relu: None };

    pub(super) fn apply(&self, row: &mut [f32]) {
        #[inline(always)]
        fn generic(p: &Prologue, row: &mut [f32]) {
            let (scale, slope) = (p.scale, p.leaky_relu);
            for v in row {
                let x = *v * scale;
                *v = match slope {
                    Some(s) if x < 0.0 => x * s,
                    _ => x,
                };
            }
        }
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        fn avx2(p: &Prologue, row: &mut [f32]) {
            generic(p, row)
        }
        #[cfg(target_arch = "x86_64")]
        if crate::quant::kernels::has_avx2() {
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            unsafe { avx2(self, row) };
            return;
        }
        generic(self, row)
    }
}

/// The geometry of one call.
pub(super) struct Geometry {
    pub batch: usize,
    pub t: usize,
    pub t_out: usize,
    pub pad: usize,
    pub dilation: usize,
}

/// `y = conv1d(prologue(x)) + bias (+ residual)` for `x` `[batch, inp, t]` and `y`
/// `[batch, out, t_out]`, every value of `y` written. Needs [`Packed1d::usable`].
///
/// # Safety
/// `y` points to `batch * out * t_out` writable values that nothing else uses during the
/// call; `t_out + dilation * (k - 1) <= t + 2 pad`.
pub(super) unsafe fn conv1d(
    x: &[f32],
    g: &Geometry,
    packed: &Packed1d,
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
    prologue: Prologue,
    y: SharedMut,
) {
    let &Geometry { batch, t, t_out, pad, dilation } = g;
    let Packed1d { out, inp, k, ob, runs, .. } = *packed;
    let span = 8 * runs;
    assert!(t_out + dilation * (k - 1) <= t + 2 * pad, "convolution geometry");
    // Rows padded on the right far enough that a block past t_out reads zeros.
    let tp = t_out.next_multiple_of(span) + dilation * (k - 1);
    let padded = padded_rows(x, batch * inp, t, pad, tp, prologue);
    let per = (t_out / 8).clamp(span, POSITIONS_PER_UNIT).next_multiple_of(span);
    let chunks = t_out.div_ceil(per);
    let blocks = out.div_ceil(ob);
    // Few chunks (short sequences): split the channel blocks too, so that both threads work.
    let groups = (8 / (batch * chunks)).clamp(1, blocks);
    let per_group = blocks.div_ceil(groups);
    // Within a unit, one block of channels at a time along all its positions: a handful of
    // output (and residual) rows stream at once, which the prefetchers follow, while the
    // unit's input stays in L2 for the next block (position-major order measured 10-30%
    // slower on 32-channel rows of 25k positions).
    let work = |unit: usize| {
        let (bi, rest) = (unit / (chunks * groups), unit % (chunks * groups));
        let (chunk, group) = (rest / groups, rest % groups);
        let (p0, p1) = (chunk * per, ((chunk + 1) * per).min(t_out));
        let (b0, b1) = (group * per_group, ((group + 1) * per_group).min(blocks));
        let xb = &padded[bi * inp * tp..(bi + 1) * inp * tp];
        for b in b0..b1 {
            for p in (p0..p1).step_by(span) {
                let count = (p1 - p).min(span);
                let lanes = ob.min(out - b * ob);
                // Channel of lane l (lanes past the last repeat it; they are not stored).
                let channel = |l: usize| b * ob + l.min(lanes - 1);
                let at = |l: usize| (bi * out + channel(l)) * t_out + p;
                let call = Call {
                    x: xb[p..].as_ptr(),
                    tp,
                    inp,
                    k,
                    dilation,
                    w: packed.data[b * inp * k * ob..].as_ptr(),
                };
                let store = Store {
                    dst: std::array::from_fn(|l| y.at(at(l))),
                    residual: residual.map(|r| std::array::from_fn(|l| r[at(l)..].as_ptr())),
                    bias: std::array::from_fn(|l| bias.map_or(0.0, |bias| bias[channel(l)])),
                    lanes,
                    count,
                };
                // SAFETY: AVX2 and FMA are present (`usable`); the block's reads stay inside
                // the padded rows (tp covers span positions past t_out plus the taps) and
                // the packed block of inp * k * ob weights; positions p..p+count of the
                // block's channels of item bi belong to this unit.
                unsafe {
                    if ob == 6 {
                        kernel::<6, 2>(&call, &store)
                    } else {
                        kernel::<4, 2>(&call, &store)
                    }
                };
            }
        }
    };
    let units = batch * chunks * groups;
    crate::quant::kernels::for_each_unit(batch * out * t_out * inp * k >= 1 << 16, units, &work);
}

/// `rows` rows of `t` values as rows of `tp`: `pad` zeros, the row through `prologue`,
/// zeros to the end; rows split across the kernel threads, every value written once.
fn padded_rows(
    x: &[f32],
    rows: usize,
    t: usize,
    pad: usize,
    tp: usize,
    prologue: Prologue,
) -> Vec<f32> {
    assert!(tp >= pad && x.len() >= rows * t, "padding geometry");
    let keep = t.min(tp - pad);
    let mut padded: Vec<f32> = Vec::with_capacity(rows * tp);
    let dst = SharedMut::from_raw(padded.as_mut_ptr());
    crate::quant::kernels::for_each_unit(rows * tp >= 1 << 15, rows, &|r| {
        // SAFETY: row r of the padded copy belongs to this unit alone and is written whole
        // here before anything reads it.
        unsafe {
            let row = dst.at(r * tp);
            std::ptr::write_bytes(row, 0, pad);
            std::ptr::copy_nonoverlapping(x[r * t..].as_ptr(), row.add(pad), keep);
            std::ptr::write_bytes(row.add(pad + keep), 0, tp - pad - keep);
            if prologue != Prologue::IDENTITY {
                prologue.apply(std::slice::from_raw_parts_mut(row.add(pad), keep));
            }
        }
    });
    // SAFETY: the loop above wrote all rows * tp values.
    unsafe { padded.set_len(rows * tp) };
    padded
}

/// What one kernel call reads: padded rows `tp` apart from `x` (already at the block's first
/// position), `inp` channels of `k` taps `dilation` apart, and the block's packed weights.
struct Call {
    x: *const f32,
    tp: usize,
    inp: usize,
    k: usize,
    dilation: usize,
    w: *const f32,
}

/// Where a kernel call writes: `lanes` channels' rows from `dst` (the rest repeat the last),
/// `count` positions, plus the bias and the residual's rows.
struct Store {
    dst: [*mut f32; 6],
    residual: Option<[*const f32; 6]>,
    bias: [f32; 6],
    lanes: usize,
    count: usize,
}

/// The sums of [`accumulate`] plus bias and residual, written out as `store` says.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel<const OB: usize, const RUNS: usize>(call: &Call, store: &Store) {
    use std::arch::x86_64::*;
    // SAFETY: the caller guarantees the reads and writes stay inside the buffers.
    unsafe {
        let mut sums = [0f32; 96];
        accumulate::<OB, RUNS>(call, &mut sums);
        let span = 8 * RUNS;
        for l in 0..store.lanes {
            let (dst, res) = (store.dst[l], store.residual.map(|r| r[l]));
            let row = &sums[l * span..(l + 1) * span];
            if store.count == span {
                let bv = _mm256_set1_ps(store.bias[l]);
                for r in 0..RUNS {
                    let mut v = _mm256_add_ps(_mm256_loadu_ps(row.as_ptr().add(8 * r)), bv);
                    if let Some(res) = res {
                        v = _mm256_add_ps(v, _mm256_loadu_ps(res.add(8 * r)));
                    }
                    _mm256_storeu_ps(dst.add(8 * r), v);
                }
            } else {
                for (i, &v) in row[..store.count].iter().enumerate() {
                    *dst.add(i) = v + store.bias[l] + res.map_or(0.0, |r| *r.add(i));
                }
            }
        }
    }
}

/// `OB` channels by `RUNS` runs of eight positions, summed over the channels and taps into
/// `out` (`OB * RUNS * 8` sums, channel-major; written with the same 32-byte stores that
/// [`kernel`] loads, so that the loads take the values from the store buffer: returned by
/// value, the sums were copied in other widths and every load stalled).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline(never)]
unsafe fn accumulate<const OB: usize, const RUNS: usize>(c: &Call, out: &mut [f32; 96]) {
    use std::arch::x86_64::*;
    const { assert!(OB * RUNS * 8 <= 96) };
    let z = _mm256_setzero_ps();
    let mut acc = [[z; RUNS]; OB];
    // SAFETY: the caller guarantees the reads stay inside x and w.
    unsafe {
        let mut w = c.w;
        for i in 0..c.inp {
            let mut row = c.x.add(i * c.tp);
            for _ in 0..c.k {
                let v: [__m256; RUNS] = std::array::from_fn(|r| _mm256_loadu_ps(row.add(8 * r)));
                for (o, acc) in acc.iter_mut().enumerate() {
                    let wv = _mm256_broadcast_ss(&*w.add(o));
                    for r in 0..RUNS {
                        acc[r] = _mm256_fmadd_ps(wv, v[r], acc[r]);
                    }
                }
                row = row.add(c.dilation);
                w = w.add(OB);
            }
        }
        for (o, acc) in acc.iter().enumerate() {
            for (r, a) in acc.iter().enumerate() {
                _mm256_storeu_ps(out.as_mut_ptr().add((o * RUNS + r) * 8), *a);
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn kernel<const OB: usize, const RUNS: usize>(_: &Call, _: &Store) {
    unreachable!("Packed1d::usable is false off x86-64")
}
