//! Sampling tests. Expected values are computed by hand (the arithmetic is in the comments).
//!
//! The running example is the logits [2, 1, 0, -1]:
//!   exp = [e^2, e^1, e^0, e^-1] = [7.3890561, 2.7182818, 1, 0.3678794], sum = 11.4752174
//!   p   = [0.6439143, 0.2368828, 0.0871443, 0.0320586]
//!   cumulative p = [0.6439143, 0.8807971, 0.9679414, 1]

use super::*;
use crate::Error;

const L4: [f32; 4] = [2.0, 1.0, 0.0, -1.0];
const P4: [f64; 4] = [0.643_914_3, 0.236_882_8, 0.087_144_3, 0.032_058_6];

fn ids(c: &Candidates) -> Vec<u32> {
    c.ids().collect()
}

fn logits_of(c: &Candidates) -> Vec<f32> {
    c.iter().map(|c| c.logit).collect()
}

fn assert_close(got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= tol, "{got:?} vs {want:?}");
    }
}

/// Only temperature: no truncation, no penalties.
fn plain(temperature: f32, seed: u64) -> SamplingParams {
    SamplingParams {
        temperature,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        seed,
        ..SamplingParams::default()
    }
}

fn arg_name(e: Error) -> &'static str {
    match e {
        Error::InvalidArgument { name, .. } => name,
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

// ---------------------------------------------------------------- helpers: rng, exp, ln

#[test]
fn splitmix64_matches_reference_outputs() {
    // splitmix64.c from state 0, and from 1234567.
    let mut s = 0;
    let got: Vec<u64> = (0..4).map(|_| splitmix64(&mut s)).collect();
    assert_eq!(
        got,
        [
            0xe220_a839_7b1d_cdaf,
            0x6e78_9e6a_a1b9_65f4,
            0x06c4_5d18_8009_454f,
            0xf88b_b8a8_724c_81ec
        ]
    );
    let mut s = 1_234_567;
    let got: Vec<u64> = (0..5).map(|_| splitmix64(&mut s)).collect();
    assert_eq!(
        got,
        [
            6457827717110365317,
            3203168211198807973,
            9817491932198370423,
            4593380528125082431,
            16408922859458223821
        ]
    );
}

#[test]
fn xoshiro256starstar_matches_reference_outputs() {
    // xoshiro256starstar.c from the state {1, 2, 3, 4} (the vector rand_xoshiro tests too).
    let mut rng = Xoshiro256StarStar::from_state([1, 2, 3, 4]);
    let want: [u64; 10] = [
        11520,
        0,
        1509978240,
        1215971899390074240,
        1216172134540287360,
        607988272756665600,
        16172922978634559625,
        8476171486693032832,
        10595114339597558777,
        2904607092377533576,
    ];
    for w in want {
        assert_eq!(rng.next_u64(), w);
    }
    // new(seed) is four splitmix64 outputs.
    let mut s = 0;
    let state = [splitmix64(&mut s), splitmix64(&mut s), splitmix64(&mut s), splitmix64(&mut s)];
    assert_eq!(Xoshiro256StarStar::new(0).state(), state);
    assert_eq!(Xoshiro256StarStar::from_state([0; 4]), Xoshiro256StarStar::new(0));
}

#[test]
fn next_f64_is_in_unit_interval_with_mean_one_half() {
    let mut rng = Xoshiro256StarStar::new(7);
    let n = 100_000;
    let mut sum = 0.0;
    for _ in 0..n {
        let u = rng.next_f64();
        assert!((0.0..1.0).contains(&u));
        sum += u;
    }
    // Standard error of the mean: sqrt(1/12 / n) = 0.00091; allow 5 of them.
    assert!((sum / n as f64 - 0.5).abs() < 0.0046);
}

#[test]
fn portable_exp_and_ln_match_std() {
    let mut x = -700.0;
    while x <= 700.0 {
        let (got, want) = (detmath::exp(x), x.exp());
        assert!(((got - want) / want).abs() < 1e-14, "exp({x}) = {got}, std {want}");
        x += 0.37;
    }
    for &x in &[-1e-12, 1e-300, -0.5, 0.346, -0.3466] {
        let (got, want) = (detmath::exp(x), x.exp());
        assert!(((got - want) / want).abs() < 1e-14, "exp({x})");
    }
    assert_eq!(detmath::exp(0.0), 1.0);
    assert_eq!(detmath::exp(f64::NEG_INFINITY), 0.0);
    assert_eq!(detmath::exp(f64::INFINITY), f64::INFINITY);

    let mut x = 1e-310_f64; // subnormal
    while x < 1e300 {
        let (got, want) = (detmath::ln(x), x.ln());
        assert!((got - want).abs() <= 1e-14 * want.abs().max(1.0), "ln({x}) = {got}, std {want}");
        x *= 1.7;
    }
    for &x in &[0.05_f64, 0.5, 1.0, 1.5, 2.0, std::f64::consts::SQRT_2, 11.475_217_368_561_138] {
        assert!((detmath::ln(x) - x.ln()).abs() < 1e-15, "ln({x})");
    }
    assert_eq!(detmath::ln(1.0), 0.0);
    assert_eq!(detmath::ln(0.0), f64::NEG_INFINITY);
    assert!(detmath::ln(-1.0).is_nan());
}

// ---------------------------------------------------------------- candidates

#[test]
fn candidates_softmax_matches_hand_values() {
    let c = Candidates::from_logits(&L4);
    assert_eq!(ids(&c), [0, 1, 2, 3]);
    assert!(!c.is_sorted());
    let p: Vec<f64> = c.probabilities().collect();
    assert_close(&p, &P4, 1e-7);

    // All banned: no distribution.
    let c = Candidates::from_logits(&[f32::NEG_INFINITY; 3]);
    assert!(c.probabilities().all(|p| p == 0.0));
}

#[test]
fn sort_is_descending_with_ties_to_lowest_id() {
    let mut c = Candidates::from_logits(&[1.0, 3.0, -0.0, 3.0, 0.0, f32::NEG_INFINITY]);
    c.sort();
    assert!(c.is_sorted());
    // -0.0 and 0.0 tie, so id 2 precedes id 4.
    assert_eq!(ids(&c), [1, 3, 0, 2, 4, 5]);
}

// ---------------------------------------------------------------- processors

#[test]
fn top_k_keeps_the_k_best_sorted() {
    let mut c = Candidates::from_logits(&[0.0, 3.0, 1.0, 2.0]);
    top_k(&mut c, 2);
    assert_eq!(ids(&c), [1, 3]);
    assert!(c.is_sorted());

    // Ties: the lower id wins the last place.
    let mut c = Candidates::from_logits(&[1.0, 2.0, 2.0, 2.0]);
    top_k(&mut c, 2);
    assert_eq!(ids(&c), [1, 2]);

    // 0 is off, and a k that removes nothing leaves the list as it is.
    for k in [0, 4, 100] {
        let mut c = Candidates::from_logits(&L4);
        top_k(&mut c, k);
        assert_eq!(ids(&c), [0, 1, 2, 3]);
    }
}

#[test]
fn top_p_keeps_the_smallest_prefix_reaching_p() {
    // Cumulative p = [0.6439, 0.8808, 0.9679, 1].
    let cases: [(f32, usize, &[u32]); 6] = [
        (0.6, 1, &[0]),           // 0.6439 >= 0.6
        (0.7, 1, &[0, 1]),        // 0.6439 < 0.7 <= 0.8808
        (0.9, 1, &[0, 1, 2]),     // 0.8808 < 0.9 <= 0.9679
        (0.99, 1, &[0, 1, 2, 3]), // needs all four
        (0.5, 3, &[0, 1, 2]),     // p reached by one, min_keep keeps three
        (1.0, 1, &[0, 1, 2, 3]),  // off
    ];
    for (p, min_keep, want) in cases {
        // Shuffled input: top-p sorts it.
        let mut c = Candidates::new_shuffled();
        top_p(&mut c, p, min_keep);
        if p < 1.0 {
            assert_eq!(ids(&c), want, "top_p {p} min_keep {min_keep}");
            assert!(c.is_sorted());
        } else {
            assert_eq!(c.len(), 4);
        }
    }
}

impl Candidates {
    /// The running example in the order 3, 1, 0, 2.
    fn new_shuffled() -> Self {
        let mut c = Candidates::default();
        for id in [3u32, 1, 0, 2] {
            c.push(id, L4[id as usize]);
        }
        c
    }
}

/// Top-p by brute force: sort everything, accumulate in f64.
fn top_p_reference(logits: &[f32], p: f64) -> Vec<u32> {
    let mut c = Candidates::from_logits(logits);
    c.sort();
    let probs: Vec<f64> = c.probabilities().collect();
    let mut cum = 0.0;
    for (i, q) in probs.iter().enumerate() {
        cum += q;
        if cum >= p {
            return ids(&c)[..=i].to_vec();
        }
    }
    ids(&c)
}

#[test]
fn top_p_on_a_large_vocabulary_equals_a_full_sort() {
    // Over 1024 candidates, top-p sorts the best 256 first and the rest only when needed.
    let mut rng = Xoshiro256StarStar::new(3);
    let logits: Vec<f32> = (0..5000).map(|_| (rng.next_f64() * 8.0) as f32).collect();
    let flat: Vec<f32> = logits.iter().map(|l| l / 8.0).collect(); // nucleus well over 256
    for (logits, p) in [(&logits, 0.05), (&logits, 0.5), (&flat, 0.9), (&flat, 0.999)] {
        let mut c = Candidates::from_logits(logits);
        top_p(&mut c, p, 1);
        assert_eq!(ids(&c), top_p_reference(logits, f64::from(p)), "p = {p}");
    }
    let mut c = Candidates::from_logits(&flat);
    top_p(&mut c, 0.9, 1);
    assert!(c.len() > 256, "the test should cross the partial sort: {}", c.len());
}

#[test]
fn min_p_keeps_tokens_at_least_p_times_the_best() {
    // p_i / p_max = exp(l_i - 2) = [1, 0.3679, 0.1353, 0.0498].
    let cases: [(f32, usize, &[u32]); 5] = [
        (0.3, 1, &[0, 1]),
        (0.1, 1, &[0, 1, 2]),
        (0.04, 1, &[0, 1, 2, 3]),
        (1.0, 1, &[0]),
        (0.5, 3, &[0, 1, 2]), // only one passes; min_keep keeps the best three
    ];
    for (p, min_keep, want) in cases {
        let mut c = Candidates::from_logits(&L4);
        min_p(&mut c, p, min_keep);
        assert_eq!(ids(&c), want, "min_p {p} min_keep {min_keep}");
        // The same on a sorted list.
        let mut c = Candidates::from_logits(&L4);
        c.sort();
        min_p(&mut c, p, min_keep);
        assert_eq!(ids(&c), want, "sorted, min_p {p} min_keep {min_keep}");
    }

    // An unsorted list keeps its order when enough pass: logits [0, 2, -1, 1] have ratios
    // [e^-2, 1, e^-3, e^-1] = [0.135, 1, 0.050, 0.368]; 0.3 keeps ids 1 and 3, in that order.
    let mut c = Candidates::from_logits(&[0.0, 2.0, -1.0, 1.0]);
    min_p(&mut c, 0.3, 1);
    assert_eq!(ids(&c), [1, 3]);
    assert!(!c.is_sorted());

    // 0 is off.
    let mut c = Candidates::from_logits(&L4);
    min_p(&mut c, 0.0, 1);
    assert_eq!(c.len(), 4);
}

#[test]
fn typical_keeps_tokens_whose_surprisal_is_near_the_entropy() {
    // -ln p = ln(11.4752174) - l = 2.4401896 - l = [0.4401896, 1.4401896, 2.4401896, 3.4401896]
    // H = sum p (-ln p) = 0.2834436 + 0.3411561 + 0.2126494 + 0.1102876 = 0.9475370
    // |-ln p - H| = [0.5073473, 0.4926527, 1.4926527, 2.4926527]
    // so the order is 1, 0, 2, 3 with cumulative p 0.2369, 0.8808, 0.9679, 1.
    let cases: [(f32, usize, &[u32]); 5] = [
        (0.2, 1, &[1]),    // 0.2369 > 0.2: the most likely token is dropped
        (0.5, 1, &[1, 0]), // 0.2369 <= 0.5 < 0.8808
        (0.95, 1, &[1, 0, 2]),
        (0.2, 2, &[1, 0]),       // min_keep
        (1.0, 1, &[0, 1, 2, 3]), // off: untouched
    ];
    for (p, min_keep, want) in cases {
        let mut c = Candidates::from_logits(&L4);
        typical(&mut c, p, min_keep);
        assert_eq!(ids(&c), want, "typical {p} min_keep {min_keep}");
    }

    // A banned token (p = 0) does not poison the entropy.
    let mut c = Candidates::from_logits(&[2.0, 1.0, 0.0, -1.0, f32::NEG_INFINITY]);
    typical(&mut c, 0.5, 1);
    assert_eq!(ids(&c), [1, 0]);
}

#[test]
fn temperature_scales_logits() {
    // [2, 1, 0, -1] / 2 = [1, 0.5, 0, -0.5]: exp = [2.7182818, 1.6487213, 1, 0.6065307],
    // sum = 5.9735338, p = [0.4550542, 0.2760043, 0.1674051, 0.1015363].
    let mut c = Candidates::from_logits(&L4);
    temperature(&mut c, 2.0);
    assert_eq!(logits_of(&c), [0.0, -0.5, -1.0, -1.5]); // shifted so the best is 0
    let p: Vec<f64> = c.probabilities().collect();
    assert_close(&p, &[0.455_054_2, 0.276_004_3, 0.167_405_1, 0.101_536_3], 1e-7);

    // A tiny temperature does not overflow: all the mass goes to the best token.
    let mut c = Candidates::from_logits(&L4);
    temperature(&mut c, 1e-30);
    let p: Vec<f64> = c.probabilities().collect();
    assert_eq!(p, [1.0, 0.0, 0.0, 0.0]);

    // t <= 0 keeps only the best, lowest id on ties.
    let mut c = Candidates::from_logits(&[1.0, 3.0, 3.0, 0.0]);
    temperature(&mut c, 0.0);
    assert_eq!(ids(&c), [1]);
}

#[test]
fn greedy_takes_the_highest_logit_and_the_lowest_id_on_ties() {
    assert_eq!(greedy(&Candidates::from_logits(&[1.0, 3.0, 3.0, 0.0])), Some(1));
    let mut c = Candidates::default();
    for (id, l) in [(3, 0.0), (2, 3.0), (1, 3.0), (0, 1.0)] {
        c.push(id, l);
    }
    assert_eq!(greedy(&c), Some(1));
    assert_eq!(greedy(&Candidates::default()), None);
}

#[test]
fn sample_distribution_edge_cases() {
    let mut rng = Xoshiro256StarStar::new(1);
    assert_eq!(sample_distribution(&Candidates::default(), &mut rng), None);
    assert_eq!(
        sample_distribution(&Candidates::from_logits(&[f32::NEG_INFINITY; 3]), &mut rng),
        None
    );
    // One candidate: returned without a draw.
    let before = rng.clone();
    assert_eq!(sample_distribution(&Candidates::from_logits(&[0.5]), &mut rng), Some(0));
    assert_eq!(rng, before);
    // Banned tokens are never drawn, wherever they sit.
    let c = Candidates::from_logits(&[
        f32::NEG_INFINITY,
        0.0,
        f32::NEG_INFINITY,
        0.0,
        f32::NEG_INFINITY,
    ]);
    for _ in 0..2000 {
        let t = sample_distribution(&c, &mut rng).unwrap();
        assert!(t == 1 || t == 3);
    }
}

#[test]
fn logit_bias_adds_and_bans() {
    let mut c = Candidates::from_logits(&[5.0, 1.0, 0.0]);
    apply_logit_bias(&mut c, &[(0, f32::NEG_INFINITY), (2, 0.5), (2, 0.25), (7, 1.0)]);
    assert_eq!(logits_of(&c), [f32::NEG_INFINITY, 1.0, 0.75]); // two entries add; id 7 absent
    assert_eq!(greedy(&c), Some(1));

    // On a reordered, truncated list the tokens are found by id.
    let mut c = Candidates::from_logits(&[5.0, 1.0, 0.0, 3.0]);
    c.sort(); // ids 0, 3, 1, 2
    c.truncate(3);
    apply_logit_bias(&mut c, &[(1, 10.0), (2, 10.0)]);
    assert_eq!(ids(&c), [0, 3, 1]);
    assert_eq!(logits_of(&c), [5.0, 3.0, 11.0]);
    assert!(!c.is_sorted());
}

#[test]
fn penalties_follow_llama_cpp_arithmetic() {
    // repeat 2, frequency 0.5, presence 0.25; accepted 0, 0, 2:
    //   token 0 (logit 2, count 2): 2 / 2 = 1, minus 2 * 0.5 + 0.25 = 1.25  -> -0.25
    //   token 2 (logit -1, count 1): -1 * 2 = -2, minus 1 * 0.5 + 0.25 = 0.75 -> -2.75
    //   tokens 1 and 3 unchanged
    let mut pen = Penalties::new(4, 64, 2.0, 0.5, 0.25).unwrap();
    for t in [0, 0, 2] {
        pen.accept(t).unwrap();
    }
    assert_eq!((pen.count(0), pen.count(1), pen.count(2)), (2, 0, 1));
    let logits = [2.0, 1.0, -1.0, 0.5];
    let mut c = Candidates::from_logits(&logits);
    pen.apply(&mut c);
    assert_eq!(logits_of(&c), [-0.25, 1.0, -2.75, 0.5]);

    // The same on a shuffled list (found by id rather than by index).
    let mut c = Candidates::default();
    for id in [3u32, 2, 1, 0] {
        c.push(id, logits[id as usize]);
    }
    pen.apply(&mut c);
    assert_eq!(logits_of(&c), [0.5, -2.75, 1.0, -0.25]);

    // A logit of exactly 0 is multiplied (and stays 0) before the subtraction.
    let mut pen = Penalties::new(2, 64, 1.5, 0.0, 1.0).unwrap();
    pen.accept(0).unwrap();
    let mut c = Candidates::from_logits(&[0.0, 0.0]);
    pen.apply(&mut c);
    assert_eq!(logits_of(&c), [-1.0, 0.0]);
}

#[test]
fn penalty_window_slides_and_resets() {
    let mut pen = Penalties::new(5, 3, 1.0, 1.0, 0.0).unwrap();
    for t in [0, 1, 1, 2] {
        pen.accept(t).unwrap();
    }
    // Window of 3: [1, 1, 2]; token 0 has left.
    assert_eq!((0..5).map(|t| pen.count(t)).collect::<Vec<_>>(), [0, 2, 1, 0, 0]);
    for t in [4, 4, 4] {
        pen.accept(t).unwrap();
    }
    assert_eq!((0..5).map(|t| pen.count(t)).collect::<Vec<_>>(), [0, 0, 0, 0, 3]);
    let mut c = Candidates::from_logits(&[0.0; 5]);
    pen.apply(&mut c);
    assert_eq!(logits_of(&c), [0.0, 0.0, 0.0, 0.0, -3.0]);
    pen.reset();
    assert_eq!(pen.count(4), 0);
    let mut c = Candidates::from_logits(&[0.0; 5]);
    pen.apply(&mut c);
    assert_eq!(logits_of(&c), [0.0; 5]);

    // -1: every accepted token counts.
    let mut pen = Penalties::new(3, -1, 1.0, 1.0, 0.0).unwrap();
    for _ in 0..1000 {
        pen.accept(1).unwrap();
    }
    assert_eq!(pen.count(1), 1000);

    // 0, or neutral values: off.
    for pen in [
        Penalties::new(3, 0, 2.0, 1.0, 1.0).unwrap(),
        Penalties::new(3, 64, 1.0, 0.0, 0.0).unwrap(),
    ] {
        let mut pen = pen;
        assert!(!pen.is_active());
        pen.accept(1).unwrap();
        let mut c = Candidates::from_logits(&[1.0, 1.0, 1.0]);
        pen.apply(&mut c);
        assert_eq!(logits_of(&c), [1.0; 3]);
    }

    // Out-of-vocabulary tokens are refused.
    let mut pen = Penalties::new(3, 64, 1.1, 0.0, 0.0).unwrap();
    assert_eq!(arg_name(pen.accept(3).unwrap_err()), "token");
}

// ---------------------------------------------------------------- the sampler

#[test]
fn sampler_greedy_applies_bias_then_penalties() {
    // Token 0: logit 1, bias -2 -> -1, then repeat penalty 2 multiplies a negative logit -> -2.
    // Token 1: logit -1.8, untouched. The argmax is token 1.
    // (Penalties first would give 1 / 2 = 0.5, then -2 -> -1.5, and token 0 would win.)
    let params = SamplingParams {
        logit_bias: vec![(0, -2.0)],
        repeat_penalty: 2.0,
        ..SamplingParams::greedy()
    };
    let mut s = Sampler::new(params, 2).unwrap();
    s.accept(0).unwrap();
    assert_eq!(s.sample(&[1.0, -1.8]).unwrap(), 1);

    // Greedy ties go to the lowest id, and a banned argmax is skipped.
    let mut s = Sampler::new(SamplingParams::greedy(), 4).unwrap();
    assert_eq!(s.sample(&[1.0, 3.0, 3.0, 0.0]).unwrap(), 1);
    let params =
        SamplingParams { logit_bias: vec![(1, f32::NEG_INFINITY)], ..SamplingParams::greedy() };
    let mut s = Sampler::new(params, 4).unwrap();
    assert_eq!(s.sample(&[1.0, 3.0, 3.0, 0.0]).unwrap(), 2);
}

#[test]
fn sampler_penalties_reduce_repetition() {
    // Two equal tokens and a frequency penalty: the less repeated one wins, ties go to id 0.
    let params = SamplingParams { frequency_penalty: 5.0, ..SamplingParams::greedy() };
    let mut s = Sampler::new(params, 2).unwrap();
    let mut out = Vec::new();
    for _ in 0..6 {
        let t = s.sample(&[1.0, 1.0]).unwrap();
        s.accept(t).unwrap();
        out.push(t);
    }
    // Counts (0, 0) -> 0; (1, 0) -> 1; (1, 1) -> 0; (2, 1) -> 1; ...
    assert_eq!(out, [0, 1, 0, 1, 0, 1]);
}

#[test]
fn logit_bias_ban_is_never_sampled() {
    let params = SamplingParams { logit_bias: vec![(0, f32::NEG_INFINITY)], ..plain(1.0, 5) };
    let mut s = Sampler::new(params, 3).unwrap();
    for _ in 0..2000 {
        assert_ne!(s.sample(&[5.0, 1.0, 0.0]).unwrap(), 0);
    }
}

#[test]
fn chain_runs_top_k_before_top_p() {
    // Logits ln 4, ln 3, ln 2, ln 1: p = [0.4, 0.3, 0.2, 0.1].
    // top-k 2 then top-p 0.55: renormalized [4/7, 3/7] = [0.571, 0.429]; 0.571 >= 0.55 keeps
    // only token 0. The other order: top-p 0.55 on [0.4, 0.3, ...] keeps two (0.4 < 0.55 <= 0.7),
    // and top-k 2 keeps both.
    let logits = [4f32.ln(), 3f32.ln(), 2f32.ln(), 0.0];
    let mut c = Candidates::from_logits(&logits);
    top_k(&mut c, 2);
    top_p(&mut c, 0.55, 1);
    assert_eq!(ids(&c), [0]);
    let mut c = Candidates::from_logits(&logits);
    top_p(&mut c, 0.55, 1);
    top_k(&mut c, 2);
    assert_eq!(ids(&c), [0, 1]);

    let params = SamplingParams { top_k: 2, top_p: 0.55, ..plain(1.0, 9) };
    let mut s = Sampler::new(params, 4).unwrap();
    for _ in 0..1000 {
        assert_eq!(s.sample(&logits).unwrap(), 0);
    }
}

#[test]
fn chain_runs_min_p_before_temperature() {
    // Logits [0, ln 0.5, ln 0.1]: ratios to the best are [1, 0.5, 0.1]; min-p 0.4 keeps tokens
    // 0 and 1. Temperature 0.5 afterwards squares the ratio: p ∝ [1, 0.25] = [0.8, 0.2].
    // (Temperature first would make token 1's ratio 0.25 < 0.4, and it would never appear.)
    let logits = [0.0, 0.5f32.ln(), 0.1f32.ln()];
    let params = SamplingParams { min_p: 0.4, ..plain(0.5, 11) };
    let mut s = Sampler::new(params, 3).unwrap();
    let mut counts = [0u32; 3];
    let n = 20_000;
    for _ in 0..n {
        counts[s.sample(&logits).unwrap() as usize] += 1;
    }
    assert_eq!(counts[2], 0);
    // Standard error of 0.2 over 20k draws: 0.0028; allow 5 of them.
    assert!((f64::from(counts[1]) / f64::from(n) - 0.2).abs() < 0.015, "{counts:?}");
    // What the draw saw: two candidates, probabilities 0.8 and 0.2.
    let p: Vec<f64> = s.candidates().probabilities().collect();
    assert_close(&p, &[0.8, 0.2], 1e-6);
}

#[test]
fn chain_runs_typical_after_top_k() {
    // Top-k 3 leaves [2, 1, 0]: p = [0.6652410, 0.2447285, 0.0900306] (exp / 11.1073379).
    // -ln p = [0.4076060, 1.4076060, 2.4076060]; H = 0.2711562 + 0.3444813 + 0.2167581 = 0.8323956
    // |-ln p - H| = [0.4247896, 0.5752104, 1.5752104]: order 0, 1, 2 and typical 0.6 keeps
    // token 0 alone (0.665 > 0.6). Without top-k first, typical 0.6 on all four keeps [1, 0].
    let params = SamplingParams { top_k: 3, typical_p: 0.6, ..plain(1.0, 2) };
    let mut s = Sampler::new(params, 4).unwrap();
    for _ in 0..500 {
        assert_eq!(s.sample(&L4).unwrap(), 0);
    }
    let mut c = Candidates::from_logits(&L4);
    typical(&mut c, 0.6, 1);
    assert_eq!(ids(&c), [1, 0]);
}

#[test]
fn same_seed_same_tokens_different_seed_different_tokens() {
    let logits: Vec<f32> = (0..50).map(|i| ((i * 7 % 13) as f32) * 0.3).collect();
    let draw = |seed: u64| -> Vec<u32> {
        let mut s = Sampler::new(plain(1.0, seed), 50).unwrap();
        (0..1000).map(|_| s.sample(&logits).unwrap()).collect()
    };
    let a = draw(1234);
    assert_eq!(a, draw(1234));
    let b = draw(1235);
    assert_ne!(a, b);
    assert!(a.iter().zip(&b).filter(|(x, y)| x != y).count() > 500);

    // reset() and set_seed() restart the stream.
    let mut s = Sampler::new(plain(1.0, 1234), 50).unwrap();
    let first: Vec<u32> = (0..100).map(|_| s.sample(&logits).unwrap()).collect();
    s.reset();
    let again: Vec<u32> = (0..100).map(|_| s.sample(&logits).unwrap()).collect();
    assert_eq!(first, again);
    assert_eq!(first, a[..100]);
    s.set_seed(1235);
    let other: Vec<u32> = (0..100).map(|_| s.sample(&logits).unwrap()).collect();
    assert_eq!(other, b[..100]);
    s.reset();
    assert_eq!(s.sample(&logits).unwrap(), b[0]);
    assert_eq!(s.params().seed, 1235);
}

#[test]
fn seeded_draws_are_pinned() {
    // Golden values: this library's own stream, so a change in the generator, the portable
    // exp or the draw shows up here. (They are not llama.cpp's tokens: it uses mt19937.)
    let mut s = Sampler::new(plain(1.0, 42), 4).unwrap();
    let got: Vec<u32> = (0..16).map(|_| s.sample(&L4).unwrap()).collect();
    let mut rng = Xoshiro256StarStar::new(42);
    let want: Vec<u32> = (0..16)
        .map(|_| {
            // The same draw by hand: first cumulative probability above u.
            let u = rng.next_f64();
            let mut cum = 0.0;
            P4.iter()
                .position(|p| {
                    cum += p;
                    cum > u
                })
                .unwrap_or(3) as u32
        })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn empirical_distribution_matches_softmax() {
    // 100k draws with a fixed seed: deterministic, so never flaky.
    let n = 100_000u32;
    let check = |params: SamplingParams, logits: &[f32], want: &[f64]| {
        let mut s = Sampler::new(params, logits.len()).unwrap();
        let mut counts = vec![0u32; logits.len()];
        for _ in 0..n {
            counts[s.sample(logits).unwrap() as usize] += 1;
        }
        let nf = f64::from(n);
        let mut chi2 = 0.0;
        for (&c, &p) in counts.iter().zip(want) {
            let freq = f64::from(c) / nf;
            // Within 4.5 standard errors sqrt(p (1 - p) / n) (0.0068 for p = 0.64).
            let se = (p * (1.0 - p) / nf).sqrt();
            assert!((freq - p).abs() <= 4.5 * se + 1e-12, "{counts:?} vs {want:?}");
            if p > 0.0 {
                chi2 += (f64::from(c) - p * nf).powi(2) / (p * nf);
            }
        }
        // Chi-square with 3 degrees of freedom: 16.27 is the 0.999 quantile.
        assert!(chi2 < 16.27, "chi2 = {chi2}, {counts:?}");
    };
    check(plain(1.0, 2024), &L4, &P4);
    // Temperature 2: p = [0.4550542, 0.2760043, 0.1674051, 0.1015363] (see temperature_scales_logits).
    check(plain(2.0, 7), &L4, &[0.455_054_2, 0.276_004_3, 0.167_405_1, 0.101_536_3]);
    // Top-k 3 renormalizes: [e^2, e, 1] / 11.1073379 = [0.6652410, 0.2447285, 0.0900306, 0].
    let params = SamplingParams { top_k: 3, ..plain(1.0, 99) };
    check(params, &L4, &[0.665_241_0, 0.244_728_5, 0.090_030_6, 0.0]);
}

#[test]
fn default_chain_on_a_large_vocabulary() {
    // Gemma 3's vocabulary size, default parameters: deterministic, and the buffer is reused.
    let vocab = 262_144;
    let mut rng = Xoshiro256StarStar::new(5);
    let logits: Vec<f32> = (0..vocab).map(|_| (rng.next_f64() * 20.0 - 10.0) as f32).collect();
    let run = |top_k: usize| {
        let params = SamplingParams {
            top_k,
            seed: 77,
            penalty_last_n: -1,
            repeat_penalty: 1.1,
            ..Default::default()
        };
        let mut s = Sampler::new(params, vocab).unwrap();
        let capacity = s.candidates.data.capacity();
        let out: Vec<u32> = (0..5)
            .map(|_| {
                let t = s.sample(&logits).unwrap();
                s.accept(t).unwrap();
                t
            })
            .collect();
        assert_eq!(s.candidates.data.capacity(), capacity);
        out
    };
    assert_eq!(run(40), run(40));
    assert_eq!(run(0), run(0));
}

#[test]
fn invalid_parameters_are_refused_by_name() {
    let d = SamplingParams::default;
    let cases: Vec<(SamplingParams, &str)> = vec![
        (SamplingParams { temperature: -0.1, ..d() }, "temperature"),
        (SamplingParams { temperature: f32::NAN, ..d() }, "temperature"),
        (SamplingParams { temperature: f32::INFINITY, ..d() }, "temperature"),
        (SamplingParams { top_p: 0.0, ..d() }, "top_p"),
        (SamplingParams { top_p: 1.5, ..d() }, "top_p"),
        (SamplingParams { top_p: f32::NAN, ..d() }, "top_p"),
        (SamplingParams { min_p: -0.1, ..d() }, "min_p"),
        (SamplingParams { min_p: 1.1, ..d() }, "min_p"),
        (SamplingParams { min_p: f32::NAN, ..d() }, "min_p"),
        (SamplingParams { typical_p: 0.0, ..d() }, "typical_p"),
        (SamplingParams { typical_p: 1.01, ..d() }, "typical_p"),
        (SamplingParams { repeat_penalty: 0.0, ..d() }, "repeat_penalty"),
        (SamplingParams { repeat_penalty: -1.0, ..d() }, "repeat_penalty"),
        (SamplingParams { repeat_penalty: f32::NAN, ..d() }, "repeat_penalty"),
        (SamplingParams { frequency_penalty: f32::NAN, ..d() }, "frequency_penalty"),
        (SamplingParams { presence_penalty: f32::INFINITY, ..d() }, "presence_penalty"),
        (SamplingParams { penalty_last_n: -2, ..d() }, "penalty_last_n"),
        (SamplingParams { logit_bias: vec![(10, 1.0)], ..d() }, "logit_bias"),
        (SamplingParams { logit_bias: vec![(1, f32::NAN)], ..d() }, "logit_bias"),
        (SamplingParams { logit_bias: vec![(1, f32::INFINITY)], ..d() }, "logit_bias"),
    ];
    for (params, name) in cases {
        assert_eq!(arg_name(Sampler::new(params.clone(), 10).unwrap_err()), name, "{params:?}");
    }
    assert_eq!(arg_name(Sampler::new(d(), 0).unwrap_err()), "vocab_size");

    // The edges of each range are fine.
    let ok = SamplingParams {
        temperature: 0.0,
        top_p: 1.0,
        min_p: 1.0,
        typical_p: 1e-6,
        penalty_last_n: -1,
        presence_penalty: -2.0,
        frequency_penalty: -2.0,
        logit_bias: vec![(9, f32::NEG_INFINITY)],
        min_keep: 0,
        ..d()
    };
    Sampler::new(ok, 10).unwrap();
}

#[test]
fn bad_logits_are_errors() {
    let mut s = Sampler::new(SamplingParams::default(), 4).unwrap();
    match s.sample(&[0.0; 3]).unwrap_err() {
        Error::Shape { expected, found, .. } => assert_eq!((expected, found), (vec![4], vec![3])),
        other => panic!("{other:?}"),
    }
    assert_eq!(arg_name(s.sample(&[0.0, f32::NAN, 0.0, 0.0]).unwrap_err()), "logits");
    assert_eq!(arg_name(s.sample(&[0.0, f32::INFINITY, 0.0, 0.0]).unwrap_err()), "logits");
    // -inf is a ban, not an error, until nothing is left.
    let mut s = Sampler::new(SamplingParams::default(), 2).unwrap();
    assert_eq!(s.sample(&[f32::NEG_INFINITY, 0.0]).unwrap(), 1);
    assert_eq!(arg_name(s.sample(&[f32::NEG_INFINITY; 2]).unwrap_err()), "logits");
    let params =
        SamplingParams { logit_bias: vec![(1, f32::NEG_INFINITY)], ..SamplingParams::greedy() };
    let mut s = Sampler::new(params, 2).unwrap();
    assert_eq!(arg_name(s.sample(&[f32::NEG_INFINITY, 0.0]).unwrap_err()), "logits");
    // An overflow to +inf through the bias.
    let params = SamplingParams { logit_bias: vec![(0, f32::MAX)], ..SamplingParams::default() };
    let mut s = Sampler::new(params, 2).unwrap();
    assert_eq!(arg_name(s.sample(&[f32::MAX, 0.0]).unwrap_err()), "logits");
    // Tokens outside the vocabulary cannot be accepted, and accept_all is all or nothing.
    let params = SamplingParams { repeat_penalty: 1.3, ..SamplingParams::default() };
    let mut s = Sampler::new(params, 4).unwrap();
    assert_eq!(arg_name(s.accept(4).unwrap_err()), "token");
    assert_eq!(arg_name(s.accept_all(&[1, 2, 9]).unwrap_err()), "token");
    assert_eq!(s.penalties().count(1), 0);
    s.accept_all(&[1, 2, 1]).unwrap();
    assert_eq!(s.penalties().count(1), 2);
}

#[test]
fn params_round_trip_through_json() {
    let params = SamplingParams {
        temperature: 0.5,
        logit_bias: vec![(3, f32::NEG_INFINITY), (4, 1.5)],
        seed: u64::MAX,
        ..SamplingParams::default()
    };
    let json = serde_json::to_string(&params).unwrap();
    assert!(json.contains(r#"[3,"-inf"]"#), "{json}");
    assert_eq!(serde_json::from_str::<SamplingParams>(&json).unwrap(), params);

    // Missing fields take their defaults; integers are accepted as biases.
    let p: SamplingParams =
        serde_json::from_str(r#"{"top_k": 5, "logit_bias": [[1, 2], [2, "-inf"]]}"#).unwrap();
    assert_eq!(p.top_k, 5);
    assert_eq!(p.temperature, 0.8);
    assert_eq!(p.logit_bias, [(1, 2.0), (2, f32::NEG_INFINITY)]);
    assert!(serde_json::from_str::<SamplingParams>(r#"{"logit_bias": [[1, "lots"]]}"#).is_err());
}

#[test]
fn defaults_are_llama_cpp_defaults() {
    let d = SamplingParams::default();
    assert_eq!((d.temperature, d.top_k, d.top_p, d.min_p, d.typical_p), (0.8, 40, 0.95, 0.05, 1.0));
    assert_eq!(
        (d.repeat_penalty, d.presence_penalty, d.frequency_penalty, d.penalty_last_n, d.min_keep),
        (1.0, 0.0, 0.0, 64, 1)
    );
    assert!(SamplingParams::greedy().is_greedy());
    assert!(!d.is_greedy());
}
