//! Matrix-vector products with the activation vector quantized to 8 bits, as llama.cpp does.
//!
//! The activations are quantized per block exactly as ggml's x86 code does (`q8_0` and `q8_1`
//! per 32 values with an f16 scale, `q8_K` per 256 values with an f32 scale and sums per 16),
//! and each weight block is multiplied with them in integers; one float multiply per block
//! (per sub-block for the K types' scales) remains. The integer sums are exact, so results
//! differ from llama.cpp's only in the order floats are added.
//!
//! Quantizing activations rounds each value to 1/254 of its block's largest magnitude: a
//! relative error per product of up to about 0.4%, which shifts logits by a few tenths on real
//! models (see `aigc-text`'s fidelity tests) in exchange for about twice the speed of the f32
//! kernels in [`super::kernels`].

use super::{GgmlType, QK_K};

/// Which block format a weight type's dot product takes its activations in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// 32 values, f16 scale (`block_q8_0`); the sum of the integers is kept per block too.
    Q8_0,
    /// 32 values, f16 scale and f16 `d * Σq` (`block_q8_1`).
    Q8_1,
    /// 256 values, f32 scale, integer sums per 16 (`block_q8_K`).
    Q8K,
}

/// The activation format for weights of type `ty`, if an integer kernel exists for it.
pub(crate) fn format_for(ty: GgmlType) -> Option<Format> {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => Some(Format::Q8_0),
        GgmlType::Q4_1 => Some(Format::Q8_1),
        GgmlType::Q4_K | GgmlType::Q6_K => Some(Format::Q8K),
        _ => None,
    }
}

/// One activation vector in a [`Format`], kept in separate arrays.
#[derive(Debug, Default)]
pub(crate) struct Q8Vec {
    format: Option<Format>,
    /// The quantized values, one per column.
    qs: Vec<i8>,
    /// The scale of each block (already rounded to f16 for the 32-value formats).
    d: Vec<f32>,
    /// Q8_1: `f16(d * Σq)` per block; Q8_0: `d * Σq` per block.
    s: Vec<f32>,
    /// Q8K: `Σq` per 16 values.
    bsums: Vec<i32>,
}

impl Q8Vec {
    /// Quantizes `x` into `format`, reusing the buffers.
    pub(crate) fn quantize(&mut self, x: &[f32], format: Format) {
        let block = if format == Format::Q8K { QK_K } else { 32 };
        assert!(x.len().is_multiple_of(block), "activations are not whole {block}-blocks");
        self.format = Some(format);
        self.qs.resize(x.len(), 0);
        self.d.clear();
        self.s.clear();
        self.bsums.clear();
        match format {
            Format::Q8_0 | Format::Q8_1 => {
                for (xb, qb) in x.chunks_exact(32).zip(self.qs.chunks_exact_mut(32)) {
                    // ggml's x86 `quantize_row_q8_0/1`: scale by 127/amax, round to nearest
                    // (ties to even), store the scale as f16.
                    let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
                    let d = amax / 127.0;
                    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
                    let mut sum = 0i32;
                    for (q, &v) in qb.iter_mut().zip(xb) {
                        *q = nearest_int(v * id) as i8;
                        sum += *q as i32;
                    }
                    let dh = half::f16::from_f32(d).to_f32();
                    self.d.push(dh);
                    self.s.push(if format == Format::Q8_1 {
                        half::f16::from_f32(d * sum as f32).to_f32()
                    } else {
                        dh * sum as f32
                    });
                }
            }
            Format::Q8K => {
                for (xb, qb) in x.chunks_exact(QK_K).zip(self.qs.chunks_exact_mut(QK_K)) {
                    // ggml's `quantize_row_q8_K_ref`: the value of largest magnitude maps
                    // to -127.
                    let (mut amax, mut max) = (0f32, 0f32);
                    for &v in xb {
                        if v.abs() > amax {
                            amax = v.abs();
                            max = v;
                        }
                    }
                    if amax == 0.0 {
                        qb.fill(0);
                        self.d.push(0.0);
                        self.bsums.extend_from_slice(&[0; QK_K / 16]);
                        continue;
                    }
                    let iscale = -127.0 / max;
                    for (q, &v) in qb.iter_mut().zip(xb) {
                        *q = nearest_int(iscale * v).min(127) as i8;
                    }
                    for s in qb.chunks_exact(16) {
                        self.bsums.push(s.iter().map(|&q| q as i32).sum());
                    }
                    self.d.push(1.0 / iscale);
                }
            }
        }
    }
}

/// `v` rounded to the nearest integer, ties to even, for `|v| < 2^22` (ggml's `nearest_int`:
/// adding 1.5 * 2^23 leaves the integer in the low mantissa bits; no libm call, vectorisable).
#[inline(always)]
fn nearest_int(v: f32) -> i32 {
    let bits = (v + 12_582_912.0).to_bits();
    (bits & 0x007F_FFFF) as i32 - 0x0040_0000
}

/// `dst[j] = row(r0 + j) · x` for the `rows` rows from `r0` of `w` (a type whose
/// [`format_for`] is `x`'s format).
pub(crate) fn rows_dot(
    ty: GgmlType,
    data: &[u8],
    row_bytes: usize,
    r0: usize,
    x: &Q8Vec,
    dst: &mut [f32],
) {
    assert_eq!(x.format, format_for(ty), "activations quantized for another weight type");
    let rows = &data[r0 * row_bytes..(r0 + dst.len()) * row_bytes];
    #[cfg(target_arch = "x86_64")]
    {
        if super::kernels::has_avx2() {
            // SAFETY: the CPU has AVX2, FMA and F16C (checked above).
            unsafe { avx2::rows_dot(ty, rows, row_bytes, x, dst) };
            return;
        }
    }
    for (row, out) in rows.chunks_exact(row_bytes).zip(dst.iter_mut()) {
        *out = scalar::dot(ty, row, x);
    }
}

/// Portable integer dot products (any CPU); the integer sums equal the SIMD ones.
mod scalar {
    use super::super::{f16, scale_min_k4};
    use super::*;

    pub(super) fn dot(ty: GgmlType, row: &[u8], x: &Q8Vec) -> f32 {
        let mut sum = 0f32;
        match ty {
            GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q8_0 => {
                let bytes = ty.type_size();
                for (b, blk) in row.chunks_exact(bytes).enumerate() {
                    let xq = &x.qs[b * 32..b * 32 + 32];
                    let d = f16(&blk[0..2]);
                    let q = |j: usize| -> i32 {
                        match ty {
                            GgmlType::Q4_0 | GgmlType::Q4_1 => {
                                let qs = &blk[if ty == GgmlType::Q4_0 { 2 } else { 4 }..];
                                (if j < 16 { qs[j] & 15 } else { qs[j - 16] >> 4 }) as i32
                            }
                            GgmlType::Q5_0 => {
                                let qh = u32::from_le_bytes(blk[2..6].try_into().unwrap());
                                let qs = &blk[6..];
                                let lo = if j < 16 { qs[j] & 15 } else { qs[j - 16] >> 4 };
                                lo as i32 | (((qh >> j) & 1) << 4) as i32
                            }
                            _ => blk[2 + j] as i8 as i32,
                        }
                    };
                    let sumi: i32 = (0..32).map(|j| q(j) * xq[j] as i32).sum();
                    sum += d * x.d[b] * sumi as f32;
                    sum += match ty {
                        GgmlType::Q4_0 => -8.0 * d * x.s[b],
                        GgmlType::Q5_0 => -16.0 * d * x.s[b],
                        GgmlType::Q4_1 => f16(&blk[2..4]) * x.s[b],
                        _ => 0.0,
                    };
                }
            }
            GgmlType::Q4_K => {
                for (b, blk) in row.chunks_exact(ty.type_size()).enumerate() {
                    let d = f16(&blk[0..2]) * x.d[b];
                    let dmin = f16(&blk[2..4]) * x.d[b];
                    let (scales, qs) = (&blk[4..16], &blk[16..144]);
                    let xq = &x.qs[b * QK_K..(b + 1) * QK_K];
                    let bs = &x.bsums[b * 16..b * 16 + 16];
                    let (mut sumi, mut summ) = (0i32, 0i32);
                    for j in 0..8 {
                        let (sc, m) = scale_min_k4(j, scales);
                        let q = &qs[32 * (j / 2)..32 * (j / 2) + 32];
                        let shift = 4 * (j % 2);
                        let s: i32 = (0..32)
                            .map(|l| ((q[l] >> shift) & 15) as i32 * xq[32 * j + l] as i32)
                            .sum();
                        sumi += sc as i32 * s;
                        summ += m as i32 * (bs[2 * j] + bs[2 * j + 1]);
                    }
                    sum += d * sumi as f32 - dmin * summ as f32;
                }
            }
            GgmlType::Q6_K => {
                for (b, blk) in row.chunks_exact(ty.type_size()).enumerate() {
                    let d = f16(&blk[208..210]) * x.d[b];
                    let xq = &x.qs[b * QK_K..(b + 1) * QK_K];
                    let bs = &x.bsums[b * 16..b * 16 + 16];
                    let mut sumi = 0i32;
                    for n in 0..2 {
                        let (ql, qh) =
                            (&blk[64 * n..64 * n + 64], &blk[128 + 32 * n..160 + 32 * n]);
                        let sc = &blk[192 + 8 * n..200 + 8 * n];
                        for l in 0..32 {
                            let is = l / 16;
                            let q = [
                                (ql[l] & 15) | ((qh[l] & 3) << 4),
                                (ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4),
                                (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4),
                                (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4),
                            ];
                            for (k, &q) in q.iter().enumerate() {
                                let xi = xq[128 * n + 32 * k + l] as i32;
                                sumi += sc[is + 2 * k] as i8 as i32 * q as i32 * xi;
                            }
                        }
                    }
                    // The values are stored as q + 32.
                    let offset: i32 =
                        (0..16).map(|k| blk[192 + k] as i8 as i32 * bs[k]).sum::<i32>() * 32;
                    sum += d * (sumi - offset) as f32;
                }
            }
            _ => unreachable!("no integer kernel for {}", ty.name()),
        }
        sum
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::super::kernels::{half_at, hsum, spread_bits};
    use super::*;

    /// One row per iteration; two accumulators so that consecutive blocks' FMAs overlap.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn rows_dot(
        ty: GgmlType,
        rows: &[u8],
        row_bytes: usize,
        x: &Q8Vec,
        dst: &mut [f32],
    ) {
        for (row, out) in rows.chunks_exact(row_bytes).zip(dst.iter_mut()) {
            // SAFETY: `row` holds whole blocks of `ty` and `x` one quantized value per column.
            *out = unsafe {
                match ty {
                    GgmlType::Q4_K => dot_q4_k(row, x),
                    GgmlType::Q6_K => dot_q6_k(row, x),
                    _ => dot_32(ty, row, x),
                }
            };
        }
    }

    const Q4_0: u8 = 0;
    const Q4_1: u8 = 1;
    const Q5_0: u8 = 2;
    const Q8_0: u8 = 3;

    /// Q4_0, Q4_1, Q5_0 and Q8_0 against `q8_0`/`q8_1` blocks.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn dot_32(ty: GgmlType, row: &[u8], x: &Q8Vec) -> f32 {
        // SAFETY: forwarded from the caller.
        unsafe {
            match ty {
                GgmlType::Q4_0 => dot_32_as::<Q4_0>(row, x),
                GgmlType::Q4_1 => dot_32_as::<Q4_1>(row, x),
                GgmlType::Q5_0 => dot_32_as::<Q5_0>(row, x),
                _ => dot_32_as::<Q8_0>(row, x),
            }
        }
    }

    /// Block `b`'s integer products with the activations, as 8 lanes of i32 sums turned to
    /// f32, and the block's correction term (min or offset) to add after scaling.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn block_32<const T: u8>(blk: *const u8, x: &Q8Vec, b: usize) -> (__m256, f32, f32) {
        let mask = _mm_set1_epi8(0x0F);
        // SAFETY: the caller passes a whole block and `b` within `x`.
        unsafe {
            let xq = _mm256_loadu_si256(x.qs.as_ptr().add(32 * b).cast());
            let d = half_at(blk);
            let (p16, extra) = match T {
                Q8_0 => {
                    let w = _mm256_loadu_si256(blk.add(2).cast());
                    (_mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(xq, w)), 0.0)
                }
                Q4_0 | Q4_1 => {
                    let qs = _mm_loadu_si128(blk.add(if T == Q4_0 { 2 } else { 4 }).cast());
                    let lo = _mm_and_si128(qs, mask);
                    let hi = _mm_and_si128(_mm_srli_epi16(qs, 4), mask);
                    let extra = if T == Q4_0 {
                        -8.0 * d * *x.s.get_unchecked(b)
                    } else {
                        half_at(blk.add(2)) * *x.s.get_unchecked(b)
                    };
                    (_mm256_maddubs_epi16(_mm256_set_m128i(hi, lo), xq), extra)
                }
                _ => {
                    // Q5_0: the fifth bit of value j is bit j of `qh`.
                    let qh = blk.add(2).cast::<u32>().read_unaligned();
                    let qs = _mm_loadu_si128(blk.add(6).cast());
                    let lo = _mm_or_si128(_mm_and_si128(qs, mask), spread_bits(qh & 0xFFFF));
                    let hi = _mm_or_si128(
                        _mm_and_si128(_mm_srli_epi16(qs, 4), mask),
                        spread_bits(qh >> 16),
                    );
                    let extra = -16.0 * d * *x.s.get_unchecked(b);
                    (_mm256_maddubs_epi16(_mm256_set_m128i(hi, lo), xq), extra)
                }
            };
            let p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
            (p, d * *x.d.get_unchecked(b), extra)
        }
    }

    /// Two blocks per iteration, each into its own accumulator.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn dot_32_as<const T: u8>(row: &[u8], x: &Q8Vec) -> f32 {
        let bytes = [18, 20, 22, 34][T as usize];
        let blocks = row.len() / bytes;
        assert!(x.d.len() >= blocks && x.s.len() >= blocks && x.qs.len() >= 32 * blocks);
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let (mut e0, mut e1) = (0f32, 0f32);
        let p = row.as_ptr();
        // SAFETY: `b < blocks`: whole blocks of the row and of `x` (asserted above).
        unsafe {
            let mut b = 0;
            while b + 2 <= blocks {
                let (p0, d0, x0) = block_32::<T>(p.add(b * bytes), x, b);
                let (p1, d1, x1) = block_32::<T>(p.add((b + 1) * bytes), x, b + 1);
                acc0 = _mm256_fmadd_ps(_mm256_set1_ps(d0), p0, acc0);
                acc1 = _mm256_fmadd_ps(_mm256_set1_ps(d1), p1, acc1);
                e0 += x0;
                e1 += x1;
                b += 2;
            }
            if b < blocks {
                let (p0, d0, x0) = block_32::<T>(p.add(b * bytes), x, b);
                acc0 = _mm256_fmadd_ps(_mm256_set1_ps(d0), p0, acc0);
                e0 += x0;
            }
            hsum(_mm256_add_ps(acc0, acc1)) + (e0 + e1)
        }
    }

    /// Bytes `j` of `(v >> shift) & mask` (shifts within 16-bit lanes, then masks per byte).
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    fn bits(v: __m256i, shift: i32, mask: __m256i) -> __m256i {
        let s = match shift {
            0 => v,
            2 => _mm256_srli_epi16(v, 2),
            4 => _mm256_srli_epi16(v, 4),
            _ => _mm256_srli_epi16(v, 6),
        };
        _mm256_and_si256(s, mask)
    }

    /// Q4_K against `q8_K`: per sub-block of 32, `scale * Σ q x`; the mins against the
    /// activations' sums per 16.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn dot_q4_k(row: &[u8], x: &Q8Vec) -> f32 {
        let m4 = _mm256_set1_epi8(0x0F);
        let mut acc = _mm256_setzero_ps();
        let mut mins = 0f32;
        // SAFETY: each 144-byte block and its 256 activations are in bounds.
        unsafe {
            for (b, blk) in row.chunks_exact(144).enumerate() {
                let dx = x.d[b];
                let d = half_at(blk.as_ptr()) * dx;
                let dmin = half_at(blk.as_ptr().add(2)) * dx;
                let bs = &x.bsums[16 * b..16 * b + 16];
                let mut sc = [0i16; 8];
                let mut summ = 0i32;
                for (j, s) in sc.iter_mut().enumerate() {
                    let (scale, m) = scale_min_k4(j, &blk[4..16]);
                    *s = scale as i16;
                    summ += m as i32 * (bs[2 * j] + bs[2 * j + 1]);
                }
                mins += dmin * summ as f32;
                let xq = x.qs.as_ptr().add(QK_K * b);
                let mut sumi = _mm256_setzero_si256();
                for j in 0..4 {
                    let q = _mm256_loadu_si256(blk.as_ptr().add(16 + 32 * j).cast());
                    let lo = _mm256_maddubs_epi16(
                        _mm256_and_si256(q, m4),
                        _mm256_loadu_si256(xq.add(64 * j).cast()),
                    );
                    let hi = _mm256_maddubs_epi16(
                        bits(q, 4, m4),
                        _mm256_loadu_si256(xq.add(64 * j + 32).cast()),
                    );
                    sumi = _mm256_add_epi32(
                        sumi,
                        _mm256_add_epi32(
                            _mm256_madd_epi16(lo, _mm256_set1_epi16(sc[2 * j])),
                            _mm256_madd_epi16(hi, _mm256_set1_epi16(sc[2 * j + 1])),
                        ),
                    );
                }
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
            }
            hsum(acc) - mins
        }
    }

    /// Q6_K against `q8_K`: the unsigned 6-bit values (stored as `q + 32`) times the
    /// activations per sub-block of 16, scaled; `32 Σ x` per sub-block subtracted in integers.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn dot_q6_k(row: &[u8], x: &Q8Vec) -> f32 {
        let m4 = _mm256_set1_epi8(0x0F);
        let m2 = _mm256_set1_epi8(0x03);
        let mut acc = _mm256_setzero_ps();
        // SAFETY: each 210-byte block and its 256 activations are in bounds.
        unsafe {
            for (b, blk) in row.chunks_exact(210).enumerate() {
                let d = half_at(blk.as_ptr().add(208)) * x.d[b];
                let bs = &x.bsums[16 * b..16 * b + 16];
                let scales = &blk[192..208];
                let offset: i32 = (0..16).map(|k| scales[k] as i8 as i32 * bs[k]).sum::<i32>() * 32;
                let xq = x.qs.as_ptr().add(QK_K * b);
                let mut sumi = _mm256_setzero_si256();
                for n in 0..2 {
                    let ql0 = _mm256_loadu_si256(blk.as_ptr().add(64 * n).cast());
                    let ql1 = _mm256_loadu_si256(blk.as_ptr().add(64 * n + 32).cast());
                    let qh = _mm256_loadu_si256(blk.as_ptr().add(128 + 32 * n).cast());
                    let q = [
                        _mm256_or_si256(
                            _mm256_and_si256(ql0, m4),
                            _mm256_slli_epi16(bits(qh, 0, m2), 4),
                        ),
                        _mm256_or_si256(
                            _mm256_and_si256(ql1, m4),
                            _mm256_slli_epi16(bits(qh, 2, m2), 4),
                        ),
                        _mm256_or_si256(bits(ql0, 4, m4), _mm256_slli_epi16(bits(qh, 4, m2), 4)),
                        _mm256_or_si256(bits(ql1, 4, m4), _mm256_slli_epi16(bits(qh, 6, m2), 4)),
                    ];
                    for (k, q) in q.into_iter().enumerate() {
                        let p = _mm256_maddubs_epi16(
                            q,
                            _mm256_loadu_si256(xq.add(128 * n + 32 * k).cast()),
                        );
                        // Values 0..16 of the 32 take the first scale, 16..32 the second.
                        let s0 = scales[8 * n + 2 * k] as i8 as i16;
                        let s1 = scales[8 * n + 2 * k + 1] as i8 as i16;
                        let sc = _mm256_set_m128i(_mm_set1_epi16(s1), _mm_set1_epi16(s0));
                        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, sc));
                    }
                }
                let s = _mm256_sub_epi32(sumi, _mm256_setr_epi32(offset, 0, 0, 0, 0, 0, 0, 0));
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(s), acc);
            }
            hsum(acc)
        }
    }

    use super::super::scale_min_k4;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::kernels::tests::{random_matrix, reference, rng};

    const TYPES: [GgmlType; 6] = [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q8_0,
        GgmlType::Q4_K,
        GgmlType::Q6_K,
    ];

    /// The activations as the integer kernels see them: `d * q` per value.
    fn dequantized(x: &Q8Vec) -> Vec<f32> {
        let block = if x.format == Some(Format::Q8K) { QK_K } else { 32 };
        x.qs.iter().enumerate().map(|(i, &q)| x.d[i / block] * q as f32).collect()
    }

    #[test]
    fn nearest_int_rounds_half_to_even() {
        for (v, want) in [(0.5, 0), (1.5, 2), (-0.5, 0), (-1.5, -2), (126.6, 127), (-127.0, -127)] {
            assert_eq!(nearest_int(v), want, "{v}");
        }
        for i in -4000..4000 {
            let v = i as f32 * 0.0371;
            assert_eq!(nearest_int(v), v.round_ties_even() as i32);
        }
    }

    #[test]
    fn quantization_follows_ggml() {
        let mut x: Vec<f32> = (0..256).map(|i| (i as f32 - 100.0) / 50.0).collect();
        x[7] = -3.5; // the largest magnitude, negative
        let mut v = Q8Vec::default();
        v.quantize(&x, Format::Q8_0);
        // Block 0: amax 3.5 -> d = f16(3.5 / 127), q = round(x * 127 / 3.5).
        assert_eq!(v.d[0], half::f16::from_f32(3.5 / 127.0).to_f32());
        assert_eq!(v.qs[7], -127);
        assert_eq!(v.qs[0], (-2.0f32 * 127.0 / 3.5).round_ties_even() as i8);
        let sum: i32 = v.qs[..32].iter().map(|&q| q as i32).sum();
        assert_eq!(v.s[0], v.d[0] * sum as f32);
        v.quantize(&x, Format::Q8_1);
        assert_eq!(v.s[0], half::f16::from_f32(3.5 / 127.0 * sum as f32).to_f32());
        v.quantize(&x, Format::Q8K);
        // The value of largest magnitude maps to -127, whatever its sign; d = 1 / iscale.
        assert_eq!(v.qs[7], -127);
        assert_eq!(v.d[0], 1.0 / (-127.0 / -3.5));
        assert_eq!(v.bsums[0], v.qs[..16].iter().map(|&q| q as i32).sum::<i32>());
        // All zeros.
        v.quantize(&[0.0; 256], Format::Q8K);
        assert!(v.qs.iter().all(|&q| q == 0) && v.d[0] == 0.0);
        v.quantize(&[0.0; 32], Format::Q8_0);
        assert!(v.qs.iter().all(|&q| q == 0) && v.d[0] == 0.0);
    }

    /// The integer kernels equal "dequantize the weights and the quantized activations, then
    /// multiply" up to f32 summation order, on every CPU path.
    #[test]
    fn integer_kernels_match_dequantized_products() {
        let mut seed = 5;
        for ty in TYPES {
            let (rows, cols) = (29, 512);
            let w = random_matrix(ty, rows, cols, &mut seed);
            let x: Vec<f32> = (0..cols).map(|_| rng(&mut seed)).collect();
            let mut q = Q8Vec::default();
            q.quantize(&x, format_for(ty).unwrap());
            let mut want = reference(&w, &dequantized(&q), 1);
            if ty == GgmlType::Q4_1 {
                // q8_1 keeps `d * Σq` rounded to f16; the weights' mins multiply that.
                let (data, row_bytes) = w.raw();
                for (r, row) in data.chunks_exact(row_bytes).enumerate() {
                    for (b, blk) in row.chunks_exact(20).enumerate() {
                        let sum: i32 = q.qs[32 * b..32 * b + 32].iter().map(|&v| v as i32).sum();
                        let m = crate::quant::f16(&blk[2..4]);
                        want[r] += m * (q.s[b] - q.d[b] * sum as f32);
                    }
                }
            }
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
            let (data, row_bytes) = w.raw();
            let mut got = vec![0f32; rows];
            rows_dot(ty, data, row_bytes, 0, &q, &mut got);
            let scalar: Vec<f32> =
                data.chunks_exact(row_bytes).map(|r| scalar::dot(ty, r, &q)).collect();
            for ((g, s), e) in got.iter().zip(&scalar).zip(&want) {
                assert!((g - e).abs() <= 2e-6 * scale, "{}: {g} vs {e}", ty.name());
                assert!((s - e).abs() <= 2e-6 * scale, "{} scalar: {s} vs {e}", ty.name());
            }
            // A row range from the middle.
            let mut part = vec![0f32; 5];
            rows_dot(ty, data, row_bytes, 20, &q, &mut part);
            assert_eq!(part, got[20..25]);
            // And close to the f32 product: the activations' rounding is all that differs.
            let exact = reference(&w, &x, 1);
            for (g, e) in got.iter().zip(&exact) {
                assert!((g - e).abs() <= 0.02 * scale, "{}: {g} vs f32 {e}", ty.name());
            }
        }
    }

    #[test]
    #[should_panic(expected = "another weight type")]
    fn activations_in_the_wrong_format_are_refused() {
        let mut seed = 1;
        let w = random_matrix(GgmlType::Q4_K, 2, 256, &mut seed);
        let mut q = Q8Vec::default();
        q.quantize(&[0.5; 256], Format::Q8_0);
        let (data, row_bytes) = w.raw();
        rows_dot(GgmlType::Q4_K, data, row_bytes, 0, &q, &mut [0.0; 2]);
    }
}
