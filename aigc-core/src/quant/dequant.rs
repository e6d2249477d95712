//! One function per GGML block type: `block` is one block's bytes exactly as stored, `y` its
//! `block_size` output values. The arithmetic follows ggml's `dequantize_row_*` step for step
//! (same products, same order), which is what makes the output bit-exact.

use super::{QK_K, f16};

/// The 16 non-linear levels of IQ4_NL and IQ4_XS (`kvalues_iq4nl` in ggml).
pub const IQ4_NL_VALUES: [i8; 16] =
    [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

/// Q4_0: `d: f16, qs: [u8; 16]`; value = d * (nibble - 8).
#[inline(always)]
pub fn dequantize_q4_0(block: &[u8], y: &mut [f32]) {
    let d = f16(&block[0..2]);
    let qs = &block[2..18];
    for j in 0..16 {
        y[j] = ((qs[j] & 0x0F) as i32 - 8) as f32 * d;
        y[j + 16] = ((qs[j] >> 4) as i32 - 8) as f32 * d;
    }
}

/// Q4_1: `d: f16, m: f16, qs: [u8; 16]`; value = d * nibble + m.
#[inline(always)]
pub fn dequantize_q4_1(block: &[u8], y: &mut [f32]) {
    let d = f16(&block[0..2]);
    let m = f16(&block[2..4]);
    let qs = &block[4..20];
    for j in 0..16 {
        y[j] = (qs[j] & 0x0F) as f32 * d + m;
        y[j + 16] = (qs[j] >> 4) as f32 * d + m;
    }
}

/// Q5_0: `d: f16, qh: u32, qs: [u8; 16]`; value = d * (5-bit value - 16).
#[inline(always)]
pub fn dequantize_q5_0(block: &[u8], y: &mut [f32]) {
    let d = f16(&block[0..2]);
    let qh = u32::from_le_bytes(block[2..6].try_into().unwrap());
    let qs = &block[6..22];
    for j in 0..16 {
        let xh0 = ((qh >> j) << 4) & 0x10;
        let xh1 = (qh >> (j + 12)) & 0x10;
        let x0 = ((qs[j] as u32 & 0x0F) | xh0) as i32 - 16;
        let x1 = ((qs[j] as u32 >> 4) | xh1) as i32 - 16;
        y[j] = x0 as f32 * d;
        y[j + 16] = x1 as f32 * d;
    }
}

/// Q5_1: `d: f16, m: f16, qh: u32, qs: [u8; 16]`; value = d * 5-bit value + m.
pub fn dequantize_q5_1(block: &[u8], y: &mut [f32]) {
    let d = f16(&block[0..2]);
    let m = f16(&block[2..4]);
    let qh = u32::from_le_bytes(block[4..8].try_into().unwrap());
    let qs = &block[8..24];
    for j in 0..16 {
        let xh0 = ((qh >> j) << 4) & 0x10;
        let xh1 = (qh >> (j + 12)) & 0x10;
        let x0 = (qs[j] as u32 & 0x0F) | xh0;
        let x1 = (qs[j] as u32 >> 4) | xh1;
        y[j] = x0 as f32 * d + m;
        y[j + 16] = x1 as f32 * d + m;
    }
}

/// Q8_0: `d: f16, qs: [i8; 32]`; value = d * q.
#[inline(always)]
pub fn dequantize_q8_0(block: &[u8], y: &mut [f32]) {
    let d = f16(&block[0..2]);
    for (y, &q) in y.iter_mut().zip(&block[2..34]) {
        *y = q as i8 as f32 * d;
    }
}

/// Q8_1: `d: f16, s: f16, qs: [i8; 32]`; value = d * q (`s` caches d * sum(q)).
pub fn dequantize_q8_1(block: &[u8], y: &mut [f32]) {
    let d = f16(&block[0..2]);
    for (y, &q) in y.iter_mut().zip(&block[4..36]) {
        *y = q as i8 as f32 * d;
    }
}

/// Q2_K: `scales: [u8; 16], qs: [u8; 64], d: f16, dmin: f16`; 16 sub-blocks of 16 values,
/// each with a 4-bit scale and a 4-bit minimum.
pub fn dequantize_q2_k(block: &[u8], y: &mut [f32]) {
    let scales = &block[0..16];
    let qs = &block[16..80];
    let d = f16(&block[80..82]);
    let min = f16(&block[82..84]);
    let mut out = 0;
    let mut is = 0;
    for n in 0..QK_K / 128 {
        let q = &qs[32 * n..32 * n + 32];
        for shift in [0u32, 2, 4, 6] {
            for half in 0..2 {
                let sc = scales[is];
                is += 1;
                let dl = d * (sc & 0x0F) as f32;
                let ml = min * (sc >> 4) as f32;
                for l in 0..16 {
                    y[out] = dl * ((q[l + 16 * half] >> shift) & 3) as f32 - ml;
                    out += 1;
                }
            }
        }
    }
}

/// Q3_K: `hmask: [u8; 32], qs: [u8; 64], scales: [u8; 12], d: f16`; 3-bit values (two low bits
/// in `qs`, the high bit in `hmask`) with 6-bit signed scales.
pub fn dequantize_q3_k(block: &[u8], y: &mut [f32]) {
    let hm = &block[0..32];
    let qs = &block[32..96];
    let d_all = f16(&block[108..110]);
    let scales = unpack_q3_k_scales(block[96..108].try_into().unwrap());
    let mut out = 0;
    let mut is = 0;
    let mut m = 1u8;
    for n in 0..QK_K / 128 {
        let q = &qs[32 * n..32 * n + 32];
        for shift in [0u32, 2, 4, 6] {
            for half in 0..2 {
                let dl = d_all * (scales[is] as i32 - 32) as f32;
                is += 1;
                for l in 0..16 {
                    let i = l + 16 * half;
                    let low = ((q[i] >> shift) & 3) as i32;
                    let high = if hm[i] & m != 0 { 0 } else { 4 };
                    y[out] = dl * (low - high) as f32;
                    out += 1;
                }
            }
            m <<= 1;
        }
    }
}

/// The 16 six-bit scales of a Q3_K block, unpacked from their 12 bytes.
fn unpack_q3_k_scales(packed: [u8; 12]) -> [u8; 16] {
    const KMASK1: u32 = 0x0303_0303;
    const KMASK2: u32 = 0x0f0f_0f0f;
    let word = |i: usize| u32::from_le_bytes(packed[4 * i..4 * i + 4].try_into().unwrap());
    let (a0, a1, tmp) = (word(0), word(1), word(2));
    let aux = [
        (a0 & KMASK2) | ((tmp & KMASK1) << 4),
        (a1 & KMASK2) | (((tmp >> 2) & KMASK1) << 4),
        ((a0 >> 4) & KMASK2) | (((tmp >> 4) & KMASK1) << 4),
        ((a1 >> 4) & KMASK2) | (((tmp >> 6) & KMASK1) << 4),
    ];
    let mut out = [0u8; 16];
    for (i, w) in aux.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// Scale and minimum of sub-block `j` from the 12 packed bytes of Q4_K and Q5_K
/// (`get_scale_min_k4` in ggml).
#[inline(always)]
pub fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

/// Q4_K: `d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128]`; 8 sub-blocks of 32 values with
/// 6-bit scales and minimums.
#[inline(always)]
pub fn dequantize_q4_k(block: &[u8], y: &mut [f32]) {
    let d = f16(&block[0..2]);
    let min = f16(&block[2..4]);
    let scales = &block[4..16];
    let qs = &block[16..144];
    for (k, q) in qs.chunks_exact(32).enumerate() {
        let (sc1, m1) = scale_min_k4(2 * k, scales);
        let (sc2, m2) = scale_min_k4(2 * k + 1, scales);
        let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
        let y = &mut y[64 * k..64 * k + 64];
        for l in 0..32 {
            y[l] = d1 * (q[l] & 0x0F) as f32 - m1;
            y[l + 32] = d2 * (q[l] >> 4) as f32 - m2;
        }
    }
}

/// Q5_K: `d: f16, dmin: f16, scales: [u8; 12], qh: [u8; 32], qs: [u8; 128]`; as Q4_K with a
/// fifth bit per value in `qh`.
pub fn dequantize_q5_k(block: &[u8], y: &mut [f32]) {
    let d = f16(&block[0..2]);
    let min = f16(&block[2..4]);
    let scales = &block[4..16];
    let qh = &block[16..48];
    let ql = &block[48..176];
    let (mut u1, mut u2) = (1u8, 2u8);
    for (k, q) in ql.chunks_exact(32).enumerate() {
        let (sc1, m1) = scale_min_k4(2 * k, scales);
        let (sc2, m2) = scale_min_k4(2 * k + 1, scales);
        let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
        let y = &mut y[64 * k..64 * k + 64];
        for l in 0..32 {
            let h1 = if qh[l] & u1 != 0 { 16 } else { 0 };
            let h2 = if qh[l] & u2 != 0 { 16 } else { 0 };
            y[l] = d1 * ((q[l] & 0x0F) + h1) as f32 - m1;
            y[l + 32] = d2 * ((q[l] >> 4) + h2) as f32 - m2;
        }
        u1 <<= 2;
        u2 <<= 2;
    }
}

/// Q6_K: `ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16`; 6-bit values with 8-bit
/// signed scales per 16 values.
#[inline(always)]
pub fn dequantize_q6_k(block: &[u8], y: &mut [f32]) {
    let d = f16(&block[208..210]);
    for n in 0..QK_K / 128 {
        let ql = &block[64 * n..64 * n + 64];
        let qh = &block[128 + 32 * n..128 + 32 * n + 32];
        let sc = &block[192 + 8 * n..192 + 8 * n + 8];
        let y = &mut y[128 * n..128 * n + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            let s = |i: usize| d * sc[i] as i8 as f32;
            y[l] = s(is) * q1 as f32;
            y[l + 32] = s(is + 2) * q2 as f32;
            y[l + 64] = s(is + 4) * q3 as f32;
            y[l + 96] = s(is + 6) * q4 as f32;
        }
    }
}

/// Q8_K: `d: f32, qs: [i8; 256], bsums: [i16; 16]`; value = d * q (`bsums` serve dot products).
pub fn dequantize_q8_k(block: &[u8], y: &mut [f32]) {
    let d = f32::from_le_bytes(block[0..4].try_into().unwrap());
    for (y, &q) in y.iter_mut().zip(&block[4..260]) {
        *y = d * q as i8 as f32;
    }
}

/// IQ4_NL: `d: f16, qs: [u8; 16]`; each nibble indexes [`IQ4_NL_VALUES`].
pub fn dequantize_iq4_nl(block: &[u8], y: &mut [f32]) {
    let d = f16(&block[0..2]);
    let qs = &block[2..18];
    for j in 0..16 {
        y[j] = d * IQ4_NL_VALUES[(qs[j] & 0x0F) as usize] as f32;
        y[j + 16] = d * IQ4_NL_VALUES[(qs[j] >> 4) as usize] as f32;
    }
}

/// IQ4_XS: `d: f16, scales_h: u16, scales_l: [u8; 4], qs: [u8; 128]`; 8 sub-blocks of 32
/// non-linear 4-bit values with 6-bit scales.
pub fn dequantize_iq4_xs(block: &[u8], y: &mut [f32]) {
    let d = f16(&block[0..2]);
    let scales_h = u16::from_le_bytes([block[2], block[3]]);
    let scales_l = &block[4..8];
    let qs = &block[8..136];
    for ib in 0..QK_K / 32 {
        let ls = ((scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0F) as i32
            | ((((scales_h >> (2 * ib)) & 3) as i32) << 4);
        let dl = d * (ls - 32) as f32;
        let q = &qs[16 * ib..16 * ib + 16];
        let y = &mut y[32 * ib..32 * ib + 32];
        for j in 0..16 {
            y[j] = dl * IQ4_NL_VALUES[(q[j] & 0x0F) as usize] as f32;
            y[j + 16] = dl * IQ4_NL_VALUES[(q[j] >> 4) as usize] as f32;
        }
    }
}
