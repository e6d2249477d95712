//! The 3x3, stride-1, padding-1 convolution of UNets and VAEs as a direct AVX2 kernel: no
//! column matrix, no packing per call. Six output channels times sixteen positions (two runs
//! of eight along a row) accumulate in registers over every input channel and tap.

use crate::quant::kernels::SharedMut;

/// A transformation of one row of one input channel, applied as the convolution reads it.
pub(super) type RowFn<'a> = &'a (dyn Fn(usize, &mut [f32]) + Sync);

/// Output channels per register block (6 x 2 runs measured ahead of 4 x 3 and 3 x 4 on the
/// terrain UNet: twelve accumulators either way, and fewer calls).
const OB: usize = 6;
/// Runs of eight positions per register block.
const RUNS: usize = 2;
/// Positions per register block.
const SPAN: usize = 8 * RUNS;
/// The most positions in one unit of work (a multiple of 16).
const POSITIONS_PER_UNIT: usize = 512;

/// 3x3 weights `[out, in, 3, 3]` repacked for the kernel: per block of six output channels,
/// `[in][tap][6]` (zeros past the last channel).
#[derive(Debug, Clone)]
pub(super) struct Packed3x3 {
    data: Vec<f32>,
    out: usize,
    inp: usize,
}

impl Packed3x3 {
    /// Packs `weight` (`[out, inp, 3, 3]`, row-major).
    pub(super) fn new(weight: &[f32], out: usize, inp: usize) -> Self {
        let blocks = out.div_ceil(OB);
        let mut data = vec![0f32; blocks * inp * 9 * OB];
        for o in 0..out {
            let (ob, lane) = (o / OB, o % OB);
            for i in 0..inp {
                for tap in 0..9 {
                    data[((ob * inp + i) * 9 + tap) * OB + lane] = weight[(o * inp + i) * 9 + tap];
                }
            }
        }
        Self { data, out, inp }
    }

    /// Whether the kernel can run here: AVX2 and FMA, and rows of whole runs of eight.
    pub(super) fn usable(width: usize) -> bool {
        crate::quant::kernels::has_avx2() && width.is_multiple_of(8) && width > 0
    }
}

/// `y (+)= conv3x3(x) + bias` for `x` `[b, inp, h, w]` and `y` `[b, out, h, w]`; with
/// `accumulate`, `y` already holds values to add onto, otherwise it may be uninitialised
/// (every value is written). `prologue(channel, row)`, where given, transforms each row of
/// the input (channels numbered across the batch) as it is read. Needs
/// [`Packed3x3::usable`]`(w)`.
///
/// # Safety
/// `y` points to `b * out * h * w` writable values that nothing else uses during the call.
pub(super) unsafe fn conv3x3(
    x: &[f32],
    [b, h, w]: [usize; 3],
    packed: &Packed3x3,
    bias: Option<&[f32]>,
    y: SharedMut,
    accumulate: bool,
    prologue: Option<RowFn<'_>>,
) {
    let (inp, out) = (packed.inp, packed.out);
    let (hp, wp) = (h + 2, w + 2);
    let plane = hp * wp;
    let padded = padded_input(x, b * inp, [h, w], [hp, wp], prologue);
    let n = h * w;
    // Units of positions: every output channel block of a pair of runs in turn, so that the
    // pair's input neighbourhoods stay in L1 while the packed weights stream through.
    let per = (n / 8).clamp(SPAN, POSITIONS_PER_UNIT).next_multiple_of(SPAN);
    let chunks = n.div_ceil(per);
    let blocks = out.div_ceil(OB);
    let work = |unit: usize| {
        let (bi, chunk) = (unit / chunks, unit % chunks);
        let (p0, p1) = (chunk * per, ((chunk + 1) * per).min(n));
        let xb = &padded[bi * inp * plane..(bi + 1) * inp * plane];
        let mut p = p0;
        while p < p1 {
            // RUNS runs of eight positions (a run may start on the next row); past the end
            // of the unit a run repeats the first and is not stored.
            let runs = (p1 - p).div_ceil(8).min(RUNS);
            let at = |p: usize| (p / w) * wp + p % w;
            let starts: [usize; RUNS] =
                std::array::from_fn(|r| at(if r < runs { p + 8 * r } else { p }));
            for ob in 0..blocks {
                let wb = &packed.data[ob * inp * 9 * OB..(ob + 1) * inp * 9 * OB];
                let lanes = OB.min(out - ob * OB);
                let dst: [*mut f32; OB] =
                    std::array::from_fn(|l| y.at((bi * out + ob * OB + l.min(lanes - 1)) * n + p));
                let bias: [f32; OB] = std::array::from_fn(|l| {
                    bias.map_or(0.0, |bias| bias[ob * OB + l.min(lanes - 1)])
                });
                let store = Store { dst, lanes, runs, bias, accumulate };
                let block = Block { x: xb.as_ptr(), starts, plane, wp, inp, w: wb.as_ptr() };
                // SAFETY: AVX2 and FMA are present (`usable`); the runs' 3x3 neighbourhoods
                // lie inside the padded planes, wb holds inp * 9 * OB values, and the output
                // positions p..p+8*runs of these channels belong to this unit.
                unsafe { kernel(&block, &store) };
            }
            p += SPAN;
        }
    };
    crate::quant::kernels::for_each_unit(b * out * n * inp >= 1 << 16, b * chunks, &work);
}

/// Where and how a kernel call writes its block: `lanes` channels' rows, the first `runs`
/// runs of eight, plus the bias, onto the old values if `accumulate`.
struct Store {
    dst: [*mut f32; OB],
    lanes: usize,
    runs: usize,
    bias: [f32; OB],
    accumulate: bool,
}

/// `x` (`channels` planes of `h x w`) in planes of `hp x wp` with the data from row 1 and
/// column 1 and zeros around it, each row transformed by `prologue(channel, row)` if given
/// (padded so that a kernel never tests an edge); planes split across the kernel threads and
/// every value written once.
pub(super) fn padded_input(
    x: &[f32],
    channels: usize,
    [h, w]: [usize; 2],
    [hp, wp]: [usize; 2],
    prologue: Option<RowFn<'_>>,
) -> Vec<f32> {
    assert!(hp > h && wp > w && x.len() >= channels * h * w, "padding geometry");
    let plane = hp * wp;
    let mut padded: Vec<f32> = Vec::with_capacity(channels * plane);
    let dst = SharedMut::from_raw(padded.as_mut_ptr());
    crate::quant::kernels::for_each_unit(channels * plane >= 1 << 15, channels, &|ch| {
        let src = &x[ch * h * w..(ch + 1) * h * w];
        for r in 0..hp {
            // SAFETY: channel ch's padded plane belongs to this unit alone; each of its rows
            // is written whole here through raw pointers, before anything reads it.
            unsafe {
                let row = dst.at(ch * plane + r * wp);
                if r == 0 || r > h {
                    std::ptr::write_bytes(row, 0, wp);
                    continue;
                }
                *row = 0.0;
                std::ptr::copy_nonoverlapping(src[(r - 1) * w..].as_ptr(), row.add(1), w);
                std::ptr::write_bytes(row.add(w + 1), 0, wp - w - 1);
                if let Some(f) = prologue {
                    f(ch, std::slice::from_raw_parts_mut(row.add(1), w));
                }
            }
        }
    });
    // SAFETY: the loop above wrote all channels * plane values.
    unsafe { padded.set_len(channels * plane) };
    padded
}

/// What one kernel call reads: the padded planes from `x` (`inp` of them, `plane` values
/// each, rows `wp` apart), the runs' top-left neighbours in a plane, and the block's packed
/// weights `w`.
struct Block {
    x: *const f32,
    starts: [usize; RUNS],
    plane: usize,
    wp: usize,
    inp: usize,
    w: *const f32,
}

/// OB channels by RUNS runs of eight positions, summed over `inp` channels and nine taps,
/// then written out as `store` says.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel(block: &Block, store: &Store) {
    use std::arch::x86_64::*;
    let mut sums = [[0f32; SPAN]; OB];
    // SAFETY: the caller guarantees the reads stay inside x and w and the writes inside
    // its part of the output.
    unsafe {
        accumulate(block, &mut sums);
        for (o, sums) in sums.iter().enumerate().take(store.lanes) {
            let bv = _mm256_set1_ps(store.bias[o]);
            for r in 0..store.runs {
                let ptr = store.dst[o].add(8 * r);
                let mut v = _mm256_add_ps(_mm256_loadu_ps(sums.as_ptr().add(8 * r)), bv);
                if store.accumulate {
                    v = _mm256_add_ps(v, _mm256_loadu_ps(ptr));
                }
                _mm256_storeu_ps(ptr, v);
            }
        }
    }
}

/// The sums of [`kernel`], on their own so that the twelve accumulators, two inputs and a
/// weight have the sixteen registers to themselves.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline(never)]
unsafe fn accumulate(block: &Block, out: &mut [[f32; SPAN]; OB]) {
    let &Block { x, starts, plane, wp, inp, w } = block;
    use std::arch::x86_64::*;
    let z = _mm256_setzero_ps();
    let mut acc = [[z; RUNS]; OB];
    // SAFETY: the caller guarantees the reads stay inside x and w.
    unsafe {
        let mut w = w;
        for i in 0..inp {
            let mut rows: [*const f32; RUNS] =
                std::array::from_fn(|r| x.add(i * plane + starts[r]));
            for _ky in 0..3 {
                // The three taps of a row: constant offsets from the run pointers and w.
                for kx in 0..3 {
                    let v: [__m256; RUNS] =
                        std::array::from_fn(|r| _mm256_loadu_ps(rows[r].add(kx)));
                    for (o, acc) in acc.iter_mut().enumerate() {
                        let wv = _mm256_broadcast_ss(&*w.add(kx * OB + o));
                        for r in 0..RUNS {
                            acc[r] = _mm256_fmadd_ps(wv, v[r], acc[r]);
                        }
                    }
                }
                rows = std::array::from_fn(|r| rows[r].add(wp));
                w = w.add(3 * OB);
            }
        }
        for (o, acc) in acc.iter().enumerate() {
            for (r, a) in acc.iter().enumerate() {
                _mm256_storeu_ps(out[o].as_mut_ptr().add(8 * r), *a);
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn kernel(_: &Block, _: &Store) {
    unreachable!("Packed3x3::usable is false off x86-64")
}
