//! `exp` and `ln` in plain IEEE-754 arithmetic.
//!
//! `f64::exp` and `f64::ln` call the platform's libm, whose last bit differs between glibc,
//! musl, macOS and Windows. Sampling compares cumulative probabilities against a random target,
//! so a one-ulp difference could, in rare cases, pick a different token on another platform.
//! These versions use only `+ - * /`, `round` and bit manipulation, which IEEE-754 defines
//! exactly, so the same logits and seed select the same token everywhere. They are accurate to
//! a few ulps, far below what sampling can observe.

/// ln 2 split in two (fdlibm's constants): `k * LN2_HI` is exact for |k| < 2^11.
const LN2_HI: f64 = 6.931_471_803_691_238e-1;
const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
const INV_LN2: f64 = std::f64::consts::LOG2_E;

/// e^x. Below -708 (where the result would be subnormal) it returns 0; above 709, +inf.
pub(crate) fn exp(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x < -708.0 {
        return 0.0;
    }
    if x > 709.0 {
        return f64::INFINITY;
    }
    // x = k ln2 + r with |r| <= ln2 / 2, then e^x = 2^k e^r.
    let k = (x * INV_LN2).round();
    let r = (x - k * LN2_HI) - k * LN2_LO;
    // Taylor series of e^r to r^11; the remainder r^12 / 12! is below 7e-15 for |r| <= 0.347.
    const C: [f64; 12] = [
        1.0,
        1.0,
        1.0 / 2.0,
        1.0 / 6.0,
        1.0 / 24.0,
        1.0 / 120.0,
        1.0 / 720.0,
        1.0 / 5040.0,
        1.0 / 40320.0,
        1.0 / 362_880.0,
        1.0 / 3_628_800.0,
        1.0 / 39_916_800.0,
    ];
    let mut p = C[11];
    for &c in C[..11].iter().rev() {
        p = p * r + c;
    }
    // k is in [-1021, 1023], so 2^k is a normal number.
    let scale = f64::from_bits(((k as i64 + 1023) as u64) << 52);
    p * scale
}

/// ln x. Returns NaN for negative or NaN input, -inf for 0, +inf for +inf.
pub(crate) fn ln(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x == f64::INFINITY {
        return x;
    }
    let mut bits = x.to_bits();
    let mut e: i64 = 0;
    if bits >> 52 == 0 {
        // Subnormal: scale into the normal range first.
        bits = (x * (1u64 << 54) as f64).to_bits();
        e = -54;
    }
    e += ((bits >> 52) & 0x7ff) as i64 - 1023;
    // x = m 2^e with m in [sqrt(1/2), sqrt(2)].
    let mut m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    // ln m = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...) with s = (m - 1) / (m + 1), |s| <= 0.172;
    // the first omitted term, s^21 / 21, is below 1e-17.
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    const C: [f64; 10] = [
        1.0,
        1.0 / 3.0,
        1.0 / 5.0,
        1.0 / 7.0,
        1.0 / 9.0,
        1.0 / 11.0,
        1.0 / 13.0,
        1.0 / 15.0,
        1.0 / 17.0,
        1.0 / 19.0,
    ];
    let mut p = C[9];
    for &c in C[..9].iter().rev() {
        p = p * s2 + c;
    }
    let e = e as f64;
    e * LN2_HI + (e * LN2_LO + 2.0 * s * p)
}
