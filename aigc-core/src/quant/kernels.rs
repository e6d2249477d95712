//! Matrix products on GGML-quantized weights that stay quantized in memory (CPU).
//!
//! Each weight block is dequantized into registers (a stack buffer of 32 or 256 values, with
//! ggml's exact arithmetic) and multiplied with the f32 activations, so the result equals
//! "dequantize the whole matrix, then multiply" up to f32 summation order: activations are
//! not quantized. A weight row is decoded once per call and used for every activation row,
//! which is what makes prefill (many rows) cheap.
//!
//! The loops are plain Rust compiled twice: for the baseline target, and with AVX2+FMA
//! enabled, chosen at run time, so LLVM vectorises them with 256-bit registers where the CPU
//! has them; the most used ones are written with AVX2 intrinsics. Rows of the weight are split
//! across a pool of spinning threads (see `pool.rs`) whose size [`set_num_threads`] sets.
//!
//! With [`Activations::Q8`] a single activation row (a decoding step) is quantized to 8 bits
//! as llama.cpp does and multiplied in integers instead (`q8.rs`).

use std::sync::{Arc, OnceLock, RwLock};

use crate::weights::SharedBytes;

use super::GgmlType;
use super::pool::{self, Pool};
use crate::error::{Error, Result};

/// Types [`QMatrix`] multiplies without dequantizing the whole matrix.
pub fn supports(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::Q4_0
            | GgmlType::Q4_1
            | GgmlType::Q5_0
            | GgmlType::Q8_0
            | GgmlType::Q4_K
            | GgmlType::Q6_K
            | GgmlType::F16
    )
}

static POOL: OnceLock<RwLock<Arc<Pool>>> = OnceLock::new();

fn pool_lock() -> &'static RwLock<Arc<Pool>> {
    POOL.get_or_init(|| {
        crate::device::tune_allocator();
        let n = std::env::var("AIGC_THREADS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        RwLock::new(Arc::new(Pool::new(n)))
    })
}

fn pool() -> Arc<Pool> {
    pool_lock().read().expect("pool lock").clone()
}

/// Sets the threads the quantized kernels use, the calling thread included (default:
/// `AIGC_THREADS`, else one per core).
pub fn set_num_threads(n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::invalid_argument("threads", "0 threads"));
    }
    *pool_lock().write().expect("pool lock") = Arc::new(Pool::new(n));
    Ok(())
}

/// The threads the quantized kernels use.
pub fn num_threads() -> usize {
    pool().threads()
}

/// Runs `f(i, threads)` for each thread `i` of the kernels' pool (the caller is thread 0), or
/// only `f(0, 1)` on the calling thread when `split` is false (too little work to pay for
/// waking the other threads).
pub(crate) fn run_parallel(split: bool, f: &(dyn Fn(usize, usize) + Sync)) {
    if !split {
        f(0, 1);
        return;
    }
    let pool = pool();
    let n = pool.threads();
    pool.run(&|i| f(i, n));
}

/// `f(unit)` for every unit in `0..units`, the kernels' threads taking the next unit as they
/// finish one (a thread that the OS delays takes fewer), or all on the calling thread when
/// `split` is false.
pub(crate) fn for_each_unit(split: bool, units: usize, f: &(dyn Fn(usize) + Sync)) {
    if !split || units < 2 {
        (0..units).for_each(f);
        return;
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    run_parallel(true, &|_, _| {
        loop {
            let unit = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if unit >= units {
                break;
            }
            f(unit);
        }
    });
}

/// `f(offset, part)` over `data` cut into one part per thread of the kernels' pool (one part,
/// on the calling thread, when `data` is shorter than `min_len`).
pub(crate) fn par_parts(data: &mut [f32], min_len: usize, f: &(dyn Fn(usize, &mut [f32]) + Sync)) {
    let len = data.len();
    let dst = SharedMut(data.as_mut_ptr());
    run_parallel(len >= min_len, &|i, n| {
        let r = pool::share(len, i, n, 16);
        // SAFETY: the threads' shares are disjoint ranges of `data`.
        f(r.start, unsafe { dst.slice(r.start, r.len()) });
    });
}

/// `f(row, values)` for each row of `row_len` values of `data`, rows shared across the
/// kernels' threads (all on the calling thread when `data` is shorter than `min_len`).
pub(crate) fn par_rows(
    data: &mut [f32],
    row_len: usize,
    min_len: usize,
    f: &(dyn Fn(usize, &mut [f32]) + Sync),
) {
    let rows = data.len() / row_len.max(1);
    let dst = SharedMut(data.as_mut_ptr());
    for_each_unit(data.len() >= min_len, rows, &|row| {
        // SAFETY: row `row` belongs to this unit alone.
        f(row, unsafe { dst.slice(row * row_len, row_len) })
    });
}

/// Thread `i`'s share of `0..len` when `n` threads split it evenly.
pub(crate) fn share_rows(len: usize, i: usize, n: usize) -> std::ops::Range<usize> {
    pool::share(len, i, n, 1)
}

/// A pointer that threads of one job write through at disjoint offsets (the kernels'
/// outputs, and the host loops of [`crate::layers`]).
#[derive(Clone, Copy)]
pub(crate) struct SharedMut(*mut f32);
// SAFETY: every use writes a range of the buffer that no other thread of the job touches,
// and the buffer outlives the job (`Pool::run` returns after every part has finished).
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// Shares `buf` with the threads of a job.
    pub(crate) fn new(buf: &mut [f32]) -> Self {
        Self(buf.as_mut_ptr())
    }

    /// Shares the buffer at `ptr` (which may be uninitialised: writes go through raw
    /// pointers).
    pub(crate) fn from_raw(ptr: *mut f32) -> Self {
        Self(ptr)
    }

    /// The pointer `start` values in (for writes with strides, in the caller's range).
    pub(crate) fn at(self, start: usize) -> *mut f32 {
        self.0.wrapping_add(start)
    }

    /// `len` values from `start`.
    /// SAFETY: the caller owns that range of the buffer for the duration of the job.
    pub(crate) unsafe fn slice<'a>(self, start: usize, len: usize) -> &'a mut [f32] {
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), len) }
    }
}

/// A `[rows, cols]` matrix of GGML blocks (each row `cols / block` blocks), as stored in GGUF.
#[derive(Clone)]
pub struct QMatrix {
    ty: GgmlType,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    data: SharedBytes,
}

impl std::fmt::Debug for QMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QMatrix({}, [{}, {}])", self.ty.name(), self.rows, self.cols)
    }
}

impl QMatrix {
    /// Wraps the raw bytes of a `[rows, cols]` tensor of type `ty` (a `Vec`, a slice that is
    /// copied, or [`SharedBytes`] of a memory-mapped file, which are not).
    pub fn new(
        ty: GgmlType,
        rows: usize,
        cols: usize,
        data: impl Into<SharedBytes>,
    ) -> Result<Self> {
        if !supports(ty) {
            return Err(Error::unsupported("quantized matmul type", ty.name()));
        }
        let block = ty.block_size();
        if !cols.is_multiple_of(block) || !cols.is_multiple_of(32) {
            return Err(Error::invalid_argument(
                "cols",
                format!("{cols} columns are not whole {} blocks", ty.name()),
            ));
        }
        let row_bytes = cols / block * ty.type_size();
        let data = data.into();
        if data.len() != rows * row_bytes {
            return Err(Error::invalid_argument(
                "data",
                format!(
                    "{} bytes for a [{rows}, {cols}] {} matrix of {} bytes",
                    data.len(),
                    ty.name(),
                    rows * row_bytes
                ),
            ));
        }
        Ok(Self { ty, rows, cols, row_bytes, data })
    }

    /// The block type.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    /// Output features (rows).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input features (columns).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes held.
    pub fn byte_len(&self) -> usize {
        self.data.len()
    }

    /// The raw blocks and the bytes per row.
    #[cfg(test)]
    pub(crate) fn raw(&self) -> (&[u8], usize) {
        (&self.data, self.row_bytes)
    }

    /// Row `r` dequantized to f32 (an embedding lookup).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) -> Result<()> {
        super::dequantize(self.ty, &self.data[r * self.row_bytes..(r + 1) * self.row_bytes], out)
    }

    /// `out[i][r] = Σ_c x[i][c] * W[r][c]` for the `n` rows of `x` (`[n, cols]` → `[n, rows]`).
    pub fn matmul(&self, x: &[f32], n: usize, out: &mut [f32]) {
        let mut scratch = Vec::new();
        self.matmul_with(x, n, out, &mut scratch);
    }

    /// [`matmul`](Self::matmul) with a caller's buffer for the `n > 1` case.
    pub fn matmul_with(&self, x: &[f32], n: usize, out: &mut [f32], scratch: &mut Vec<f32>) {
        assert_eq!(x.len(), n * self.cols, "matmul: x is not [n, cols]");
        assert_eq!(out.len(), n * self.rows, "matmul: out is not [n, rows]");
        if n == 1 {
            with_acts(&[self], x, |acts| self.matvec(acts[0], out));
            return;
        }
        if n >= GEMM_MIN_ROWS {
            self.gemm(x, n, out);
            return;
        }
        // Rows in parallel; each task writes its rows for every activation row into a
        // `[rows, n]` buffer (contiguous per task), transposed into `out` afterwards.
        scratch.resize(n * self.rows, 0.0);
        if self.rows * self.cols * n < SERIAL_MAX_WEIGHTS {
            // Too little work to pay for waking other threads.
            rows_dot(self, 0, self.rows, x, n, scratch);
        } else {
            self.parallel(x, n, scratch);
        }
        for r in 0..self.rows {
            for i in 0..n {
                out[i * self.rows + r] = scratch[r * n + i];
            }
        }
    }

    /// `out = W x` for one activation row.
    fn matvec(&self, x: Act<'_>, out: &mut [f32]) {
        if self.rows * self.cols < SERIAL_MAX_WEIGHTS {
            act_dot(self, 0, x, out);
            return;
        }
        let pool = pool();
        let n = pool.threads();
        let dst = SharedMut(out.as_mut_ptr());
        pool.run(&|i| {
            let r = pool::share(self.rows, i, n, ROW_ALIGN);
            // SAFETY: the shares of the threads are disjoint ranges of `out`.
            act_dot(self, r.start, x, unsafe { dst.slice(r.start, r.len()) });
        });
    }

    /// Fewer than [`GEMM_MIN_ROWS`] activation rows: `target` is `[rows, n]`.
    fn parallel(&self, x: &[f32], n: usize, target: &mut [f32]) {
        let pool = pool();
        let threads = pool.threads();
        let dst = SharedMut(target.as_mut_ptr());
        pool.run(&|i| {
            let r = pool::share(self.rows, i, threads, ROW_ALIGN);
            // SAFETY: the shares of the threads are disjoint row ranges of `target`.
            let dst = unsafe { dst.slice(r.start * n, r.len() * n) };
            rows_dot(self, r.start, r.len(), x, n, dst);
        });
    }

    /// Many activation rows (a prompt): each panel of weight rows is decoded to f32 once and
    /// multiplied with a real GEMM straight into its columns of `out` (`[n, rows]`). Panels
    /// stay small enough for L2; thread `i` takes panels `i, i + threads, ...`.
    fn gemm(&self, x: &[f32], n: usize, out: &mut [f32]) {
        let pool = pool();
        let threads = pool.threads();
        let dst = SharedMut(out.as_mut_ptr());
        let panels = self.rows.div_ceil(PANEL_ROWS);
        pool.run(&|i| {
            let mut panel = Vec::new();
            for p in (i..panels).step_by(threads) {
                let r0 = p * PANEL_ROWS;
                let rows = PANEL_ROWS.min(self.rows - r0);
                panel.resize(rows * self.cols, 0f32);
                decode_panel(self, r0, rows, &mut panel);
                // out[i * self.rows + r0 + r] = Σ_k x[i * cols + k] * panel[r * cols + k]
                // SAFETY: every pointer and stride stays inside `x`, `panel` and `out`; the
                // columns r0..r0 + rows of `out` are this thread's alone.
                unsafe {
                    gemm::gemm(
                        n,
                        rows,
                        self.cols,
                        dst.at(r0),
                        1,
                        self.rows as isize,
                        false,
                        x.as_ptr(),
                        1,
                        self.cols as isize,
                        panel.as_ptr(),
                        self.cols as isize,
                        1,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            }
        });
    }
}

/// One activation vector `x` (`[cols]`) times several matrices with the same `cols` (the
/// q/k/v or gate/up projections of a layer), in one parallel region: `outs[m] = mats[m] x`.
pub fn matvec_many(mats: &[&QMatrix], x: &[f32], outs: &mut [&mut [f32]]) {
    assert_eq!(mats.len(), outs.len(), "one output per matrix");
    assert!(mats.len() <= MAX_GROUP, "matvec_many takes at most {MAX_GROUP} matrices");
    for (m, o) in mats.iter().zip(outs.iter()) {
        assert_eq!(x.len(), m.cols, "matvec_many: x is not [cols]");
        assert_eq!(o.len(), m.rows, "matvec_many: an output is not [rows]");
    }
    with_acts(mats, x, |acts| {
        let total: usize = mats.iter().map(|m| m.rows * m.cols).sum();
        if total < SERIAL_MAX_WEIGHTS {
            for ((m, o), &a) in mats.iter().zip(outs.iter_mut()).zip(acts) {
                act_dot(m, 0, a, o);
            }
            return;
        }
        let pool = pool();
        let n = pool.threads();
        let dsts: [Option<SharedMut>; MAX_GROUP] =
            std::array::from_fn(|m| outs.get_mut(m).map(|o| SharedMut(o.as_mut_ptr())));
        pool.run(&|i| {
            for ((m, a), dst) in mats.iter().zip(acts).zip(&dsts) {
                let r = pool::share(m.rows, i, n, ROW_ALIGN);
                let dst = dst.expect("one output per matrix");
                // SAFETY: the shares of the threads are disjoint ranges of each output.
                act_dot(m, r.start, *a, unsafe { dst.slice(r.start, r.len()) });
            }
        });
    });
}

/// Most matrices [`matvec_many`] takes at once.
pub const MAX_GROUP: usize = 4;

/// How the matrix-vector kernels (one activation row: a decoding step) take the activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activations {
    /// f32, as transformers computes: a product equals "dequantize the weight, then multiply"
    /// up to the order of f32 additions.
    F32,
    /// Quantized to 8 bits per block as llama.cpp does (`q8_0`/`q8_1` per 32 values,
    /// `q8_K` per 256) and multiplied in integers, for Q4_0, Q4_1, Q5_0, Q8_0, Q4_K and
    /// Q6_K weights (F16 weights keep f32 activations). About twice as fast; each value is
    /// rounded to 1/254 of its block's largest magnitude (up to about 0.4% relative error per
    /// product), so logits move by up to a few tenths, as llama.cpp's do. Prompts (several rows
    /// at once) are always multiplied in f32.
    Q8,
}

static ACTIVATIONS: OnceLock<RwLock<Activations>> = OnceLock::new();

fn activations_lock() -> &'static RwLock<Activations> {
    ACTIVATIONS.get_or_init(|| {
        let a = match std::env::var("AIGC_ACTIVATIONS").as_deref() {
            Ok("q8") | Ok("Q8") => Activations::Q8,
            _ => Activations::F32,
        };
        RwLock::new(a)
    })
}

/// Sets how the matrix-vector kernels take activations, for every model in the process
/// (default: `AIGC_ACTIVATIONS=q8` or `f32`, else f32).
pub fn set_activations(a: Activations) {
    *activations_lock().write().expect("activations lock") = a;
}

/// How the matrix-vector kernels take activations on this thread: the override of
/// [`with_activations`] if one is active, else the process-wide setting.
pub fn activations() -> Activations {
    ACTIVATIONS_HERE.get().unwrap_or_else(|| *activations_lock().read().expect("activations lock"))
}

thread_local! {
    static ACTIVATIONS_HERE: std::cell::Cell<Option<Activations>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with products started from this thread taking activations as `a` (other threads
/// keep theirs): a model run inside `f` on this thread uses `a`.
pub fn with_activations<R>(a: Activations, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Activations>);
    impl Drop for Restore {
        fn drop(&mut self) {
            ACTIVATIONS_HERE.set(self.0);
        }
    }
    let _restore = Restore(ACTIVATIONS_HERE.replace(Some(a)));
    f()
}

thread_local! {
    /// The activation vector quantized once per product, in each format a product needs.
    static Q8_ACTS: std::cell::RefCell<[super::q8::Q8Vec; 3]> = Default::default();
}

/// Calls `f` with the activation row `x` prepared for each of `mats`: quantized once per
/// format when [`activations`] is [`Activations::Q8`] and the type has an integer kernel.
fn with_acts<R>(mats: &[&QMatrix], x: &[f32], f: impl FnOnce(&[Act<'_>]) -> R) -> R {
    use super::q8::{Format, format_for};
    let q8 = activations() == Activations::Q8;
    let slot = |m: &QMatrix| {
        if !q8 {
            return None;
        }
        format_for(m.ty).map(|f| match f {
            Format::Q8_0 => (0, f),
            Format::Q8_1 => (1, f),
            Format::Q8K => (2, f),
        })
    };
    assert!(mats.len() <= MAX_GROUP);
    if mats.iter().all(|m| slot(m).is_none()) {
        return f(&[Act::F32(x); MAX_GROUP][..mats.len()]);
    }
    Q8_ACTS.with_borrow_mut(|bufs| {
        let mut done = [false; 3];
        for m in mats {
            if let Some((i, fmt)) = slot(m)
                && !done[i]
            {
                bufs[i].quantize(x, fmt);
                done[i] = true;
            }
        }
        let bufs = &*bufs;
        let mut acts = [Act::F32(x); MAX_GROUP];
        for (a, m) in acts.iter_mut().zip(mats) {
            if let Some((i, _)) = slot(m) {
                *a = Act::Q8(&bufs[i]);
            }
        }
        f(&acts[..mats.len()])
    })
}

/// From this many activation rows on, products go through f32 panels and a GEMM.
const GEMM_MIN_ROWS: usize = 8;

/// Products with fewer weights than this run on the calling thread.
const SERIAL_MAX_WEIGHTS: usize = 160 * 1024;

/// Weight rows per GEMM panel.
const PANEL_ROWS: usize = 128;

/// Threads split weight rows in multiples of this.
const ROW_ALIGN: usize = 8;

/// One activation row for the matrix-vector kernels: f32, or quantized for the integer kernels.
#[derive(Clone, Copy)]
enum Act<'a> {
    F32(&'a [f32]),
    Q8(&'a super::q8::Q8Vec),
}

fn act_dot(w: &QMatrix, r0: usize, x: Act<'_>, dst: &mut [f32]) {
    match x {
        Act::F32(x) => rows_dot(w, r0, dst.len(), x, 1, dst),
        Act::Q8(x) => super::q8::rows_dot(w.ty, &w.data, w.row_bytes, r0, x, dst),
    }
}

fn rows_dot(w: &QMatrix, r0: usize, rows: usize, x: &[f32], n: usize, dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx2() {
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            unsafe { rows_dot_avx2(w, r0, rows, x, n, dst) };
            return;
        }
    }
    rows_dot_with::<Scalar>(w, r0, rows, x, n, dst)
}

/// Rows `r0..r0 + rows` of `w` decoded to f32 into `out` (`[rows, cols]`).
fn decode_panel(w: &QMatrix, r0: usize, rows: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx2() {
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            unsafe { decode_panel_avx2(w, r0, rows, out) };
            return;
        }
    }
    decode_panel_generic(w, r0, rows, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn decode_panel_avx2(w: &QMatrix, r0: usize, rows: usize, out: &mut [f32]) {
    decode_panel_generic(w, r0, rows, out)
}

#[inline(always)]
fn decode_panel_generic(w: &QMatrix, r0: usize, rows: usize, out: &mut [f32]) {
    match w.ty {
        GgmlType::Q4_0 => decode_rows::<DQ4_0>(w, r0, rows, out),
        GgmlType::Q4_1 => decode_rows::<DQ4_1>(w, r0, rows, out),
        GgmlType::Q5_0 => decode_rows::<DQ5_0>(w, r0, rows, out),
        GgmlType::Q8_0 => decode_rows::<DQ8_0>(w, r0, rows, out),
        GgmlType::Q4_K => decode_rows::<DQ4K>(w, r0, rows, out),
        GgmlType::Q6_K => decode_rows::<DQ6K>(w, r0, rows, out),
        GgmlType::F16 => decode_rows::<DF16>(w, r0, rows, out),
        _ => unreachable!("checked by QMatrix::new"),
    }
}

#[inline(always)]
fn decode_rows<D: Decode>(w: &QMatrix, r0: usize, rows: usize, out: &mut [f32]) {
    let bytes = w.row_bytes / (w.cols / D::BS);
    let data = &w.data[r0 * w.row_bytes..(r0 + rows) * w.row_bytes];
    for (blk, y) in data.chunks_exact(bytes).zip(out.chunks_exact_mut(D::BS)) {
        D::decode(blk, y);
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
    })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows_dot_avx2(w: &QMatrix, r0: usize, rows: usize, x: &[f32], n: usize, dst: &mut [f32]) {
    match (w.ty, n) {
        // Decode (one activation row) on the most common 32-blocks: hand-written.
        (GgmlType::Q4_1 | GgmlType::Q8_0 | GgmlType::Q5_0, 1) => unsafe {
            matvec_avx2(w, r0, rows, x, dst)
        },
        (GgmlType::Q4_K | GgmlType::Q6_K, 1) => unsafe { matvec_k_avx2(w, r0, rows, x, dst) },
        _ => rows_dot_with::<Avx2>(w, r0, rows, x, n, dst),
    }
}

/// The f16 at `p` as f32 (F16C). Functions, not closures: closures do not inherit
/// `target_feature`, so they would not inline into the kernel.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) unsafe fn half_at(p: *const u8) -> f32 {
    use std::arch::x86_64::*;
    // SAFETY: the caller passes a pointer to two readable bytes.
    unsafe {
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(p.cast::<u16>().read_unaligned() as i32)))
    }
}

/// Bit `j` of `bits` (j < 16) to 0x10 in byte `j`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn spread_bits(bits: u32) -> std::arch::x86_64::__m128i {
    use std::arch::x86_64::*;
    let v = _mm_shuffle_epi8(
        _mm_cvtsi32_si128(bits as i32),
        _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
    );
    let sel = _mm_setr_epi8(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
    _mm_and_si128(_mm_cmpeq_epi8(_mm_and_si128(v, sel), sel), _mm_set1_epi8(0x10))
}

/// `dst[j] = row(r0 + j) · x` for Q4_1, Q5_0 and Q8_0, factored per block as
/// `d * Σ q x (+ m * Σ x)` (Q5_0: `d * (Σ q' x - 16 Σ x)` with `q'` the unsigned 5-bit value): the integers are widened to f32 and multiplied with `x` in
/// 8-lane FMAs, each block's sum is scaled once, and `Σ x` per block is computed once per call.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::needless_range_loop)] // pointer arithmetic by block index
unsafe fn matvec_avx2(w: &QMatrix, r0: usize, rows: usize, x: &[f32], dst: &mut [f32]) {
    let (mut stack, mut heap) = ([0f32; XSUM_STACK], Vec::new());
    // SAFETY: forwarded from the caller (AVX2, FMA, F16C present).
    unsafe {
        match w.ty {
            GgmlType::Q4_1 => {
                let xsum = block_sums(x, 32, &mut stack, &mut heap);
                matvec_avx2_as::<F_Q4_1>(w, r0, rows, x, xsum, dst)
            }
            GgmlType::Q5_0 => {
                let xsum = block_sums(x, 32, &mut stack, &mut heap);
                matvec_avx2_as::<F_Q5_0>(w, r0, rows, x, xsum, dst)
            }
            _ => matvec_avx2_as::<F_Q8_0>(w, r0, rows, x, &[], dst),
        }
    }
}

const F_Q4_1: u8 = 0;
const F_Q5_0: u8 = 1;
const F_Q8_0: u8 = 2;

/// Block `b` of a row: its scale, its 32 integers widened to i32 (four vectors of 8), and its
/// term outside the scaled sum (`m Σx` for Q4_1, `-16 d Σx` for Q5_0).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn block_f32<const T: u8>(
    blk: *const u8,
    xsum: f32,
) -> (f32, [std::arch::x86_64::__m256i; 4], f32) {
    use std::arch::x86_64::*;
    // SAFETY: the caller passes a whole block.
    unsafe {
        let mask = _mm_set1_epi8(0x0F);
        let d = half_at(blk);
        let widen = |lo: __m128i, hi: __m128i| {
            [
                _mm256_cvtepu8_epi32(lo),
                _mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8)),
                _mm256_cvtepu8_epi32(hi),
                _mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8)),
            ]
        };
        match T {
            F_Q4_1 => {
                let qs = _mm_loadu_si128(blk.add(4).cast());
                let lo = _mm_and_si128(qs, mask);
                let hi = _mm_and_si128(_mm_srli_epi16(qs, 4), mask);
                (d, widen(lo, hi), half_at(blk.add(2)) * xsum)
            }
            F_Q5_0 => {
                let qh = blk.add(2).cast::<u32>().read_unaligned();
                let qs = _mm_loadu_si128(blk.add(6).cast());
                // Bit j of `qh` is the fifth bit of value j.
                let lo = _mm_or_si128(_mm_and_si128(qs, mask), spread_bits(qh & 0xFFFF));
                let hi =
                    _mm_or_si128(_mm_and_si128(_mm_srli_epi16(qs, 4), mask), spread_bits(qh >> 16));
                (d, widen(lo, hi), -16.0 * d * xsum)
            }
            _ => {
                let qs = blk.add(2);
                let q = [
                    _mm256_cvtepi8_epi32(_mm_loadl_epi64(qs.cast())),
                    _mm256_cvtepi8_epi32(_mm_loadl_epi64(qs.add(8).cast())),
                    _mm256_cvtepi8_epi32(_mm_loadl_epi64(qs.add(16).cast())),
                    _mm256_cvtepi8_epi32(_mm_loadl_epi64(qs.add(24).cast())),
                ];
                (d, q, 0.0)
            }
        }
    }
}

/// `Σ q x` over one block as 8 lanes, as two independent FMA chains.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn block_dot(
    q: [std::arch::x86_64::__m256i; 4],
    x: [std::arch::x86_64::__m256; 4],
) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let a = _mm256_fmadd_ps(
        _mm256_cvtepi32_ps(q[1]),
        x[1],
        _mm256_mul_ps(_mm256_cvtepi32_ps(q[0]), x[0]),
    );
    let b = _mm256_fmadd_ps(
        _mm256_cvtepi32_ps(q[3]),
        x[3],
        _mm256_mul_ps(_mm256_cvtepi32_ps(q[2]), x[2]),
    );
    _mm256_add_ps(a, b)
}

/// Two rows per iteration (but for Q8_0) share the activation loads.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn matvec_avx2_as<const T: u8>(
    w: &QMatrix,
    r0: usize,
    rows: usize,
    x: &[f32],
    xsum: &[f32],
    dst: &mut [f32],
) {
    use std::arch::x86_64::*;
    let blocks = w.cols / 32;
    let bytes = w.ty.type_size();
    let sum_at = |b: usize| if T == F_Q8_0 { 0.0 } else { xsum[b] };
    // SAFETY (all loads): a row holds `blocks` blocks of `bytes` bytes, `x` holds `cols` values;
    // every offset below stays inside them.
    unsafe {
        let xv = |b: usize| {
            let p = x.as_ptr().add(b * 32);
            [
                _mm256_loadu_ps(p),
                _mm256_loadu_ps(p.add(8)),
                _mm256_loadu_ps(p.add(16)),
                _mm256_loadu_ps(p.add(24)),
            ]
        };
        let mut j = 0;
        // Q8_0 blocks are loaded straight into the widening instructions; pairing rows only
        // adds register pressure there.
        while T != F_Q8_0 && j + 2 <= rows {
            let ra = w.data.as_ptr().add((r0 + j) * w.row_bytes);
            let rb = ra.add(w.row_bytes);
            let (mut acc_a, mut acc_b) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            let (mut ea, mut eb) = (0f32, 0f32);
            for b in 0..blocks {
                let xb = xv(b);
                let (da, qa, xa) = block_f32::<T>(ra.add(b * bytes), sum_at(b));
                let (db, qb, xb2) = block_f32::<T>(rb.add(b * bytes), sum_at(b));
                acc_a = _mm256_fmadd_ps(_mm256_set1_ps(da), block_dot(qa, xb), acc_a);
                acc_b = _mm256_fmadd_ps(_mm256_set1_ps(db), block_dot(qb, xb), acc_b);
                ea += xa;
                eb += xb2;
            }
            dst[j] = hsum(acc_a) + ea;
            dst[j + 1] = hsum(acc_b) + eb;
            j += 2;
        }
        while j < rows {
            let ra = w.data.as_ptr().add((r0 + j) * w.row_bytes);
            let mut acc = _mm256_setzero_ps();
            let mut e = 0f32;
            for b in 0..blocks {
                let (d, q, xa) = block_f32::<T>(ra.add(b * bytes), sum_at(b));
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d), block_dot(q, xv(b)), acc);
                e += xa;
            }
            dst[j] = hsum(acc) + e;
            j += 1;
        }
    }
}

/// Sums of `x` per block, kept on the stack up to this many blocks.
const XSUM_STACK: usize = 1024;

/// The sum of each `block` values of `x`, in `stack` when it fits (no allocation), else in
/// `heap`.
#[inline(always)]
fn block_sums<'a>(
    x: &[f32],
    block: usize,
    stack: &'a mut [f32; XSUM_STACK],
    heap: &'a mut Vec<f32>,
) -> &'a [f32] {
    let n = x.len() / block;
    let dst: &mut [f32] = if n <= XSUM_STACK {
        &mut stack[..n]
    } else {
        heap.resize(n, 0.0);
        heap
    };
    for (d, c) in dst.iter_mut().zip(x.chunks_exact(block)) {
        *d = c.iter().sum();
    }
    dst
}

/// The sum of the 8 lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn hsum(acc: std::arch::x86_64::__m256) -> f32 {
    use std::arch::x86_64::*;
    let s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

/// `dst[j] = row(r0 + j) · x` for Q4_K and Q6_K with f32 activations: each sub-block's
/// integers are widened to f32 and multiplied with `x` in 8-lane FMAs, and the sum scaled by
/// the sub-block's scale; the mins (Q4_K) and the `- 32` offset (Q6_K) are applied to sums of
/// `x` per sub-block, computed once per call.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::needless_range_loop)] // pointer arithmetic by row and block index
unsafe fn matvec_k_avx2(w: &QMatrix, r0: usize, rows: usize, x: &[f32], dst: &mut [f32]) {
    use std::arch::x86_64::*;
    let q4k = w.ty == GgmlType::Q4_K;
    let sub = if q4k { 32 } else { 16 };
    let (mut stack, mut heap) = ([0f32; XSUM_STACK], Vec::new());
    let xsum = block_sums(x, sub, &mut stack, &mut heap);
    let blocks = w.cols / super::QK_K;
    let bytes = w.ty.type_size();
    /// 32 bytes of small unsigned integers times 32 values of `x`: two 16-value sums.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn dot32(q: __m256i, x: *const f32) -> (__m256, __m256) {
        // SAFETY: `x` points at 32 readable values.
        unsafe {
            let lo = _mm256_castsi256_si128(q);
            let hi = _mm256_extracti128_si256(q, 1);
            let f = |v: __m128i| _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v));
            let a = _mm256_mul_ps(f(lo), _mm256_loadu_ps(x));
            let a = _mm256_fmadd_ps(f(_mm_srli_si128(lo, 8)), _mm256_loadu_ps(x.add(8)), a);
            let b = _mm256_mul_ps(f(hi), _mm256_loadu_ps(x.add(16)));
            let b = _mm256_fmadd_ps(f(_mm_srli_si128(hi, 8)), _mm256_loadu_ps(x.add(24)), b);
            (a, b)
        }
    }
    let m4 = _mm256_set1_epi8(0x0F);
    let m2 = _mm256_set1_epi8(0x03);
    // SAFETY (all loads): a row holds `blocks` blocks of `bytes` bytes and `x` `cols` values.
    unsafe {
        for j in 0..rows {
            let row = w.data.as_ptr().add((r0 + j) * w.row_bytes);
            let mut acc = _mm256_setzero_ps();
            let mut corr = 0f32;
            for b in 0..blocks {
                let blk = row.add(b * bytes);
                let xb = x.as_ptr().add(b * super::QK_K);
                if q4k {
                    let d = half_at(blk);
                    let dmin = half_at(blk.add(2));
                    let scales = std::slice::from_raw_parts(blk.add(4), 12);
                    for jj in 0..4 {
                        let q = _mm256_loadu_si256(blk.add(16 + 32 * jj).cast());
                        for (h, v) in
                            [_mm256_and_si256(q, m4), _mm256_and_si256(_mm256_srli_epi16(q, 4), m4)]
                                .into_iter()
                                .enumerate()
                        {
                            let sb = 2 * jj + h;
                            let (sc, m) = super::scale_min_k4(sb, scales);
                            let (s0, s1) = dot32(v, xb.add(32 * sb));
                            acc = _mm256_fmadd_ps(
                                _mm256_set1_ps(d * sc as f32),
                                _mm256_add_ps(s0, s1),
                                acc,
                            );
                            corr -= dmin * m as f32 * xsum[b * 8 + sb];
                        }
                    }
                } else {
                    let d = half_at(blk.add(208));
                    let scales = std::slice::from_raw_parts(blk.add(192), 16);
                    for n in 0..2 {
                        let ql0 = _mm256_loadu_si256(blk.add(64 * n).cast());
                        let ql1 = _mm256_loadu_si256(blk.add(64 * n + 32).cast());
                        let qh = _mm256_loadu_si256(blk.add(128 + 32 * n).cast());
                        let high = |shift: i32| {
                            let h = match shift {
                                0 => qh,
                                2 => _mm256_srli_epi16(qh, 2),
                                4 => _mm256_srli_epi16(qh, 4),
                                _ => _mm256_srli_epi16(qh, 6),
                            };
                            _mm256_slli_epi16(_mm256_and_si256(h, m2), 4)
                        };
                        let q = [
                            _mm256_or_si256(_mm256_and_si256(ql0, m4), high(0)),
                            _mm256_or_si256(_mm256_and_si256(ql1, m4), high(2)),
                            _mm256_or_si256(
                                _mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                                high(4),
                            ),
                            _mm256_or_si256(
                                _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                high(6),
                            ),
                        ];
                        for (k, q) in q.into_iter().enumerate() {
                            let (s0, s1) = dot32(q, xb.add(128 * n + 32 * k));
                            let sc0 = d * (scales[8 * n + 2 * k] as i8) as f32;
                            let sc1 = d * (scales[8 * n + 2 * k + 1] as i8) as f32;
                            acc = _mm256_fmadd_ps(_mm256_set1_ps(sc0), s0, acc);
                            acc = _mm256_fmadd_ps(_mm256_set1_ps(sc1), s1, acc);
                            let x16 = b * 16 + 8 * n + 2 * k;
                            corr -= 32.0 * (sc0 * xsum[x16] + sc1 * xsum[x16 + 1]);
                        }
                    }
                }
            }
            dst[j] = hsum(acc) + corr;
        }
    }
}

/// Partial sums of a dot product, 8 lanes wide.
trait Lanes {
    type Acc: Copy;
    fn zero() -> Self::Acc;
    /// `acc += w[..] * x[..]` over `w.len()` values, a multiple of 8.
    fn fma(acc: Self::Acc, w: &[f32], x: &[f32]) -> Self::Acc;
    fn sum(acc: Self::Acc) -> f32;
}

/// Portable lanes (any CPU).
struct Scalar;

impl Lanes for Scalar {
    type Acc = [f32; 8];
    #[inline(always)]
    fn zero() -> Self::Acc {
        [0.0; 8]
    }
    #[inline(always)]
    fn fma(mut acc: Self::Acc, w: &[f32], x: &[f32]) -> Self::Acc {
        for (w, x) in w.chunks_exact(8).zip(x.chunks_exact(8)) {
            for l in 0..8 {
                acc[l] += w[l] * x[l];
            }
        }
        acc
    }
    #[inline(always)]
    fn sum(acc: Self::Acc) -> f32 {
        acc.iter().sum()
    }
}

/// AVX2 + FMA lanes; only used after [`has_avx2`] (which also checks F16C).
#[cfg(target_arch = "x86_64")]
struct Avx2;

#[cfg(target_arch = "x86_64")]
impl Lanes for Avx2 {
    type Acc = std::arch::x86_64::__m256;
    #[inline(always)]
    fn zero() -> Self::Acc {
        // SAFETY: only reached from `rows_dot_avx2`, on a CPU with AVX.
        unsafe { std::arch::x86_64::_mm256_setzero_ps() }
    }
    #[inline(always)]
    fn fma(mut acc: Self::Acc, w: &[f32], x: &[f32]) -> Self::Acc {
        use std::arch::x86_64::*;
        assert!(w.len() <= x.len() && w.len().is_multiple_of(8));
        // SAFETY: AVX2/FMA present (see above); every load is within `w` and `x`.
        unsafe {
            for c in (0..w.len()).step_by(8) {
                acc = _mm256_fmadd_ps(
                    _mm256_loadu_ps(w.as_ptr().add(c)),
                    _mm256_loadu_ps(x.as_ptr().add(c)),
                    acc,
                );
            }
        }
        acc
    }
    #[inline(always)]
    fn sum(acc: Self::Acc) -> f32 {
        // SAFETY: AVX2, FMA and F16C present (see above).
        unsafe { hsum(acc) }
    }
}

/// How one block type decodes: `BS` values from `type_size` bytes.
trait Decode {
    const BS: usize;
    fn decode(blk: &[u8], y: &mut [f32]);
}

macro_rules! decoder {
    ($name:ident, $bs:expr, $f:path) => {
        struct $name;
        impl Decode for $name {
            const BS: usize = $bs;
            #[inline(always)]
            fn decode(blk: &[u8], y: &mut [f32]) {
                $f(blk, y)
            }
        }
    };
}

decoder!(DQ4_0, 32, super::dequant::dequantize_q4_0);
decoder!(DQ4_1, 32, super::dequant::dequantize_q4_1);
decoder!(DQ5_0, 32, super::dequant::dequantize_q5_0);
decoder!(DQ8_0, 32, super::dequant::dequantize_q8_0);
decoder!(DQ4K, 256, super::dequant::dequantize_q4_k);
decoder!(DQ6K, 256, super::dequant::dequantize_q6_k);
decoder!(DF16, 32, decode_f16_run);

/// 32 f16 values (64 bytes) to f32.
#[inline(always)]
fn decode_f16_run(blk: &[u8], y: &mut [f32]) {
    for (y, h) in y.iter_mut().zip(blk.chunks_exact(2)) {
        *y = super::f16(h);
    }
}

#[inline(always)]
fn rows_dot_with<L: Lanes>(
    w: &QMatrix,
    r0: usize,
    rows: usize,
    x: &[f32],
    n: usize,
    dst: &mut [f32],
) {
    match w.ty {
        GgmlType::Q4_0 => rows_for::<DQ4_0, L>(w, r0, rows, x, n, dst),
        GgmlType::Q4_1 => rows_for::<DQ4_1, L>(w, r0, rows, x, n, dst),
        GgmlType::Q5_0 => rows_for::<DQ5_0, L>(w, r0, rows, x, n, dst),
        GgmlType::Q8_0 => rows_for::<DQ8_0, L>(w, r0, rows, x, n, dst),
        GgmlType::Q4_K => rows_for::<DQ4K, L>(w, r0, rows, x, n, dst),
        GgmlType::Q6_K => rows_for::<DQ6K, L>(w, r0, rows, x, n, dst),
        GgmlType::F16 => rows_for::<DF16, L>(w, r0, rows, x, n, dst),
        _ => unreachable!("checked by QMatrix::new"),
    }
}

/// Decodes each block of each row once and accumulates it against every activation row.
#[inline(always)]
fn rows_for<D: Decode, L: Lanes>(
    w: &QMatrix,
    r0: usize,
    rows: usize,
    x: &[f32],
    n: usize,
    dst: &mut [f32],
) {
    // Fewer activation rows than GEMM_MIN_ROWS come here (more go through the GEMM), so the
    // partial sums fit on the stack: nothing is allocated per call.
    assert!(n < GEMM_MIN_ROWS, "rows_for takes fewer than {GEMM_MIN_ROWS} activation rows");
    let bytes = w.row_bytes / (w.cols / D::BS);
    let mut buf = [0f32; 256];
    let buf = &mut buf[..D::BS];
    let mut acc = [L::zero(); GEMM_MIN_ROWS];
    let acc = &mut acc[..n];
    for j in 0..rows {
        let row = &w.data[(r0 + j) * w.row_bytes..(r0 + j + 1) * w.row_bytes];
        acc.iter_mut().for_each(|a| *a = L::zero());
        for (b, blk) in row.chunks_exact(bytes).enumerate() {
            D::decode(blk, buf);
            for (i, a) in acc.iter_mut().enumerate() {
                let off = i * w.cols + b * D::BS;
                *a = L::fma(*a, buf, &x[off..off + D::BS]);
            }
        }
        for (i, a) in acc.iter().enumerate() {
            dst[j * n + i] = L::sum(*a);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn rng(seed: &mut u64) -> f32 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// Random blocks of `ty` with sane scales: random bytes, then each f16 scale field set.
    pub(crate) fn random_matrix(ty: GgmlType, rows: usize, cols: usize, seed: &mut u64) -> QMatrix {
        let blocks = rows * cols / ty.block_size();
        let mut data = Vec::with_capacity(blocks * ty.type_size());
        for _ in 0..blocks {
            let mut blk: Vec<u8> =
                (0..ty.type_size()).map(|_| ((rng(seed) + 1.0) * 127.5) as u8).collect();
            let scale = |v: f32| half::f16::from_f32(v).to_le_bytes();
            match ty {
                GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => {
                    blk[0..2].copy_from_slice(&scale(0.01 + 0.02 * rng(seed).abs()))
                }
                GgmlType::Q4_1 => {
                    blk[0..2].copy_from_slice(&scale(0.01 + 0.02 * rng(seed).abs()));
                    blk[2..4].copy_from_slice(&scale(-0.1 * rng(seed).abs()));
                }
                GgmlType::Q4_K => {
                    blk[0..2].copy_from_slice(&scale(0.002 + 0.002 * rng(seed).abs()));
                    blk[2..4].copy_from_slice(&scale(0.002 * rng(seed).abs()));
                }
                GgmlType::Q6_K => {
                    blk[208..210].copy_from_slice(&scale(0.001 + 0.001 * rng(seed).abs()))
                }
                GgmlType::F16 => {
                    blk.clear();
                    blk.extend_from_slice(&scale(rng(seed) * 0.1));
                }
                _ => unreachable!(),
            }
            data.extend_from_slice(&blk);
        }
        QMatrix::new(ty, rows, cols, data).unwrap()
    }

    pub(crate) fn reference(w: &QMatrix, x: &[f32], n: usize) -> Vec<f32> {
        let xs = x;
        let mut out = vec![0f32; n * w.rows];
        let mut row = vec![0f32; w.cols];
        for r in 0..w.rows {
            w.dequantize_row(r, &mut row).unwrap();
            for i in 0..n {
                out[i * w.rows + r] = row
                    .iter()
                    .zip(&xs[i * w.cols..(i + 1) * w.cols])
                    .map(|(a, b)| (a * b) as f64)
                    .sum::<f64>() as f32;
            }
        }
        out
    }

    #[test]
    fn every_type_matches_dequantize_then_dot() {
        let mut seed = 7;
        for ty in [
            GgmlType::Q4_0,
            GgmlType::Q4_1,
            GgmlType::Q5_0,
            GgmlType::Q8_0,
            GgmlType::Q4_K,
            GgmlType::Q6_K,
            GgmlType::F16,
        ] {
            let (rows, cols) = (37, 512);
            let w = random_matrix(ty, rows, cols, &mut seed);
            for n in [1, 3, 9] {
                let x: Vec<f32> = (0..n * cols).map(|_| rng(&mut seed)).collect();
                let mut got = vec![0f32; n * rows];
                w.matmul(&x, n, &mut got);
                // Against dequantize-then-multiply in f64: only f32 summation order differs.
                let want = reference(&w, &x, n);
                let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
                for (g, e) in got.iter().zip(&want) {
                    assert!((g - e).abs() <= 1e-5 * scale, "{}: {g} vs {e} (n={n})", ty.name());
                }
            }
        }
    }

    /// The portable path (what a CPU without AVX2 runs) on every type.
    #[test]
    fn portable_path_matches_dequantize_then_dot() {
        let mut seed = 9;
        for ty in [
            GgmlType::Q4_0,
            GgmlType::Q4_1,
            GgmlType::Q5_0,
            GgmlType::Q8_0,
            GgmlType::Q4_K,
            GgmlType::Q6_K,
            GgmlType::F16,
        ] {
            let (rows, cols) = (13, 512);
            let w = random_matrix(ty, rows, cols, &mut seed);
            for n in [1, 3] {
                let x: Vec<f32> = (0..n * cols).map(|_| rng(&mut seed)).collect();
                let mut got = vec![0f32; n * rows]; // [rows, n]
                rows_dot_with::<Scalar>(&w, 0, rows, &x, n, &mut got);
                let want = reference(&w, &x, n);
                let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
                for r in 0..rows {
                    for i in 0..n {
                        let (g, e) = (got[r * n + i], want[i * rows + r]);
                        assert!((g - e).abs() <= 1e-5 * scale, "{}: {g} vs {e}", ty.name());
                    }
                }
            }
        }
    }

    #[test]
    fn thread_count_is_settable_and_results_do_not_depend_on_it() {
        let mut seed = 3;
        let w = random_matrix(GgmlType::Q4_1, 300, 256, &mut seed);
        let x: Vec<f32> = (0..2 * 256).map(|_| rng(&mut seed)).collect();
        let mut a = vec![0f32; 600];
        let mut b = vec![0f32; 600];
        set_num_threads(1).unwrap();
        w.matmul(&x, 2, &mut a);
        set_num_threads(3).unwrap();
        assert_eq!(num_threads(), 3);
        w.matmul(&x, 2, &mut b);
        assert_eq!(a, b);
        assert!(set_num_threads(0).is_err());
        set_num_threads(std::thread::available_parallelism().map_or(1, |n| n.get())).unwrap();
    }

    #[test]
    fn matvec_many_equals_separate_products() {
        let mut seed = 11;
        let a = random_matrix(GgmlType::Q4_1, 700, 256, &mut seed);
        let b = random_matrix(GgmlType::Q5_0, 300, 256, &mut seed);
        let c = random_matrix(GgmlType::Q8_0, 5, 256, &mut seed);
        let x: Vec<f32> = (0..256).map(|_| rng(&mut seed)).collect();
        let mut outs = [vec![0f32; 700], vec![0f32; 300], vec![0f32; 5]];
        {
            let mut slices: Vec<&mut [f32]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
            matvec_many(&[&a, &b, &c], &x, &mut slices);
        }
        for (m, o) in [&a, &b, &c].iter().zip(&outs) {
            let mut want = vec![0f32; m.rows()];
            m.matmul(&x, 1, &mut want);
            assert_eq!(o, &want);
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(QMatrix::new(GgmlType::Q4_1, 2, 48, vec![0u8; 2 * 30]).is_err());
        assert!(QMatrix::new(GgmlType::Q4_1, 2, 32, vec![0u8; 39]).is_err());
        assert!(QMatrix::new(GgmlType::Q2_K, 1, 256, vec![0u8; 84]).is_err());
    }
}
