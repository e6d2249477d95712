//! Rational resampling with a polyphase FIR filter, as `scipy.signal.resample_poly` does it
//! with its defaults: a Kaiser-windowed (beta 5) sinc low-pass of `20 * max(up, down) + 1`
//! taps after reducing `up / down`, gain `up`, output `ceil(n * up / down)` samples aligned on
//! the filter's centre.

use aigc_core::{Error, Result};

/// `x` (mono) resampled from `from` Hz to `to` Hz.
pub fn resample(x: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    if from == 0 || to == 0 {
        return Err(Error::invalid_argument("sample rate", format!("{from} Hz to {to} Hz")));
    }
    let g = gcd(from as u64, to as u64);
    resample_poly(x, (to as u64 / g) as usize, (from as u64 / g) as usize)
}

/// `x` upsampled by `up` and downsampled by `down` (reduced by their common divisor first).
pub fn resample_poly(x: &[f32], up: usize, down: usize) -> Result<Vec<f32>> {
    if up == 0 || down == 0 {
        return Err(Error::invalid_argument("resampling ratio", format!("{up}/{down}")));
    }
    let g = gcd(up as u64, down as u64) as usize;
    let (up, down) = (up / g, down / g);
    if up == 1 && down == 1 {
        return Ok(x.to_vec());
    }
    if up.max(down) > 1 << 16 {
        return Err(Error::invalid_argument(
            "resampling ratio",
            format!("{up}/{down} needs a filter of over a million taps"),
        ));
    }
    let n_in = x.len();
    let n_out = (n_in * up).div_ceil(down);
    let half_len = 10 * up.max(down);
    let h = lowpass(2 * half_len + 1, 1.0 / up.max(down) as f64, up as f64);
    // scipy pads the filter in front so that the output's first sample sits on its centre.
    let pre_pad = down - half_len % down;
    let pre_remove = (half_len + pre_pad) / down;
    // Output sample j is sample (j + pre_remove) * down of the upsampled signal filtered by
    // the padded filter: sum over k of h[k - pre_pad] * xu[m - k], xu[i * up] = x[i].
    let out = (0..n_out)
        .map(|j| {
            let m = (j + pre_remove) * down;
            // Input i contributes through filter index k = m - i * up - pre_pad when
            // 0 <= k < h.len().
            let mut acc = 0f64;
            if m >= pre_pad && n_in > 0 {
                let i_lo = (m + 1).saturating_sub(pre_pad + h.len()).div_ceil(up);
                let i_hi = ((m - pre_pad) / up).min(n_in - 1);
                for i in i_lo..=i_hi {
                    acc += h[m - i * up - pre_pad] * x[i] as f64;
                }
            }
            acc as f32
        })
        .collect();
    Ok(out)
}

/// `scipy.signal.firwin(taps, cutoff, window=("kaiser", 5.0))` times `gain`: a windowed sinc
/// low-pass with cutoff `cutoff` (1 = Nyquist), scaled to unit gain at DC.
fn lowpass(taps: usize, cutoff: f64, gain: f64) -> Vec<f64> {
    let centre = (taps - 1) as f64 / 2.0;
    let beta = 5.0;
    let i0_beta = bessel_i0(beta);
    let mut h: Vec<f64> = (0..taps)
        .map(|n| {
            let m = n as f64 - centre;
            let sinc = if m == 0.0 {
                1.0
            } else {
                let a = std::f64::consts::PI * cutoff * m;
                a.sin() / a
            };
            let r = 2.0 * n as f64 / (taps - 1) as f64 - 1.0;
            let window = bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / i0_beta;
            cutoff * sinc * window
        })
        .collect();
    let sum: f64 = h.iter().sum();
    h.iter_mut().for_each(|v| *v *= gain / sum);
    h
}

/// The modified Bessel function of the first kind, order 0 (power series).
fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term, q) = (1.0, 1.0, x * x / 4.0);
    for k in 1..200 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a.max(1) } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_errors() {
        let x = [1.0, 2.0, 3.0];
        assert_eq!(resample(&x, 16000, 16000).unwrap(), x.to_vec());
        assert!(resample(&x, 0, 16000).is_err());
        assert!(resample_poly(&x, 3, 0).is_err());
        assert_eq!(resample_poly(&[], 2, 1).unwrap(), Vec::<f32>::new());
    }

    #[test]
    fn keeps_a_low_tone_and_its_length() {
        // A 200 Hz tone from 8 kHz to 12 kHz: same tone, 1.5x the samples.
        let x: Vec<f32> = (0..800)
            .map(|i| (2.0 * std::f32::consts::PI * 200.0 * i as f32 / 8000.0).sin())
            .collect();
        let y = resample(&x, 8000, 12000).unwrap();
        assert_eq!(y.len(), 1200);
        for (j, &v) in y.iter().enumerate().skip(100).take(1000) {
            let want = (2.0 * std::f64::consts::PI * 200.0 * j as f64 / 12000.0).sin();
            assert!((v as f64 - want).abs() < 2e-3, "{j}: {v} vs {want}");
        }
    }
}
