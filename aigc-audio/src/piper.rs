//! Piper voices: a VITS model exported to ONNX with its `.onnx.json` (sample rate, espeak
//! voice, phoneme id map, inference defaults), loaded from the ONNX initializers.
//!
//! [`PiperVoice::speak`] runs Piper's synthesis: espeak-ng phonemes per sentence, phoneme ids
//! from the voice's map, the text encoder (`enc_p.*`), the stochastic duration predictor
//! (`dp.*`), the prior sampled with `noise_scale`, the reversed flow (`flow.*`) and the
//! HiFi-GAN decoder (`dec.*`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aigc_core::burn::tensor::{Device, Tensor, TensorData};
use aigc_core::weights::{OnnxFile, TensorSource, WeightLoader};
use aigc_core::{Error, Result};

use crate::hifigan::{HifiGan, HifiGanConfig, HifiGanNames, ResBlockKind};
use crate::vits::{
    DurationPredictor, Flow, FlowConfig, TextEncoder, TextEncoderConfig, TextEncoding,
};

/// The fields of a Piper voice's `.onnx.json` that synthesis needs.
#[derive(Debug, Clone, PartialEq)]
pub struct PiperConfig {
    /// Output sample rate in Hz (`audio.sample_rate`; 22,050 for medium voices).
    pub sample_rate: u32,
    /// `audio.quality`: `x_low`, `low`, `medium` or `high` (it selects the architecture).
    pub quality: String,
    /// The espeak-ng voice for phonemisation (`en-us`).
    pub espeak_voice: String,
    /// `espeak` (IPA phonemes) or `text` (code points).
    pub phoneme_type: String,
    /// Phoneme (one code point) to model ids.
    pub phoneme_id_map: HashMap<char, Vec<i64>>,
    /// Embedding rows.
    pub num_symbols: usize,
    /// Speakers (1: no speaker input).
    pub num_speakers: usize,
    /// Default `noise_scale`.
    pub noise_scale: f32,
    /// Default `length_scale`.
    pub length_scale: f32,
    /// Default `noise_w`.
    pub noise_w: f32,
}

/// Sentence framing symbols of Piper's id sequences.
const BOS: char = '^';
const EOS: char = '$';
const PAD: char = '_';

impl PiperConfig {
    /// Parses `.onnx.json` text.
    pub fn from_json(text: &str) -> Result<Self> {
        let bad = |why: String| Error::invalid_argument("Piper voice config", why);
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let get = |path: &[&str]| path.iter().try_fold(&v, |v, k| v.get(k));
        let text_at = |path: &[&str]| {
            get(path)
                .and_then(|x| x.as_str())
                .map(str::to_string)
                .ok_or_else(|| bad(format!("`{}` missing", path.join("."))))
        };
        let num_at =
            |path: &[&str], default: f64| get(path).and_then(|x| x.as_f64()).unwrap_or(default);
        let map = get(&["phoneme_id_map"])
            .and_then(|m| m.as_object())
            .ok_or_else(|| bad("`phoneme_id_map` missing".into()))?;
        let mut phoneme_id_map = HashMap::new();
        for (k, ids) in map {
            let mut chars = k.chars();
            let (Some(c), None) = (chars.next(), chars.next()) else {
                return Err(bad(format!("phoneme {k:?} is not one code point")));
            };
            let ids: Option<Vec<i64>> =
                ids.as_array().and_then(|a| a.iter().map(|x| x.as_i64()).collect());
            let ids = ids.ok_or_else(|| bad(format!("ids of {k:?} are not integers")))?;
            phoneme_id_map.insert(c, ids);
        }
        let num_symbols = num_at(&["num_symbols"], 256.0) as usize;
        if let Some((c, id)) = phoneme_id_map
            .iter()
            .flat_map(|(c, ids)| ids.iter().map(move |id| (c, id)))
            .find(|&(_, &id)| id < 0 || id as usize >= num_symbols)
        {
            return Err(bad(format!("phoneme {c:?} maps to id {id}, outside 0..{num_symbols}")));
        }
        for c in [BOS, EOS, PAD] {
            if !phoneme_id_map.contains_key(&c) {
                return Err(bad(format!("`phoneme_id_map` lacks {c:?}")));
            }
        }
        let sample_rate = num_at(&["audio", "sample_rate"], 0.0);
        if !(1.0..=384_000.0).contains(&sample_rate) {
            return Err(bad(format!("sample rate {sample_rate}")));
        }
        Ok(Self {
            sample_rate: sample_rate as u32,
            quality: text_at(&["audio", "quality"]).unwrap_or_else(|_| "medium".into()),
            espeak_voice: text_at(&["espeak", "voice"]).unwrap_or_else(|_| "en-us".into()),
            phoneme_type: text_at(&["phoneme_type"]).unwrap_or_else(|_| "espeak".into()),
            phoneme_id_map,
            num_symbols,
            num_speakers: num_at(&["num_speakers"], 1.0) as usize,
            noise_scale: num_at(&["inference", "noise_scale"], 0.667) as f32,
            length_scale: num_at(&["inference", "length_scale"], 1.0) as f32,
            noise_w: num_at(&["inference", "noise_w"], 0.8) as f32,
        })
    }

    /// Model ids for one sentence's phonemes (code points), as piper-phonemize frames them:
    /// `^ _ (phoneme _)* $`. Phonemes the voice does not know are skipped, as Piper does;
    /// they are returned second.
    pub fn phoneme_ids(&self, phonemes: &str) -> (Vec<i64>, Vec<char>) {
        let ids = |c: char| self.phoneme_id_map.get(&c).cloned().unwrap_or_default();
        let (mut out, mut missing) = (ids(BOS), Vec::new());
        out.extend(ids(PAD));
        for c in phonemes.chars() {
            match self.phoneme_id_map.get(&c) {
                Some(i) => {
                    out.extend(i);
                    out.extend(ids(PAD));
                }
                None => missing.push(c),
            }
        }
        out.extend(ids(EOS));
        (out, missing)
    }

    /// The text encoder's shape for this voice's quality (Piper's training presets).
    pub fn encoder_config(&self) -> Result<TextEncoderConfig> {
        let (hidden, filter) = match self.quality.as_str() {
            "x_low" => (96, 384),
            "low" | "medium" | "high" => (192, 768),
            other => return Err(Error::unsupported("Piper voice quality", other.to_string())),
        };
        Ok(TextEncoderConfig {
            n_vocab: self.num_symbols,
            hidden,
            filter,
            heads: 2,
            layers: 6,
            kernel: 3,
            window: 4,
            out_channels: hidden,
        })
    }

    /// The decoder's shape for this voice's quality (Piper's training presets).
    pub fn decoder_config(&self) -> Result<HifiGanConfig> {
        let (initial, rates, kernels, rb_kernels, dilations, resblock) = match self.quality.as_str()
        {
            "x_low" | "low" | "medium" => (
                256,
                vec![8, 8, 4],
                vec![16, 16, 8],
                vec![3, 5, 7],
                vec![vec![1, 2], vec![2, 6], vec![3, 12]],
                ResBlockKind::Two,
            ),
            "high" => (
                512,
                vec![8, 8, 2, 2],
                vec![16, 16, 4, 4],
                vec![3, 7, 11],
                vec![vec![1, 3, 5]; 3],
                ResBlockKind::One,
            ),
            other => return Err(Error::unsupported("Piper voice quality", other.to_string())),
        };
        let inter = if self.quality == "x_low" { 96 } else { 192 };
        Ok(HifiGanConfig {
            in_channels: inter,
            upsample_initial_channel: initial,
            upsample_rates: rates,
            upsample_kernel_sizes: kernels,
            resblock_kernel_sizes: rb_kernels,
            resblock_dilation_sizes: dilations,
            leaky_relu_slope: 0.1,
            sampling_rate: self.sample_rate,
            normalize_before: false,
            resblock,
        })
    }
}

/// Synthesis parameters (Piper's `scales` input and a seed for the noise).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SynthesisOptions {
    /// Scale of the noise added to the prior (variation in delivery; 0 is deterministic).
    pub noise_scale: f32,
    /// Duration multiplier (above 1 is slower).
    pub length_scale: f32,
    /// Scale of the duration predictor's noise (variation in timing).
    pub noise_w: f32,
    /// Seed of the noise.
    pub seed: u64,
}

impl SynthesisOptions {
    /// The voice's inference defaults with `seed`.
    pub fn defaults(config: &PiperConfig, seed: u64) -> Self {
        Self {
            noise_scale: config.noise_scale,
            length_scale: config.length_scale,
            noise_w: config.noise_w,
            seed,
        }
    }
}

/// One synthesised sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct SpokenSentence {
    /// Its IPA phonemes (with the clause punctuation).
    pub phonemes: String,
    /// The ids fed to the model, framed as [`PiperConfig::phoneme_ids`] frames them
    /// (`^ _ (phoneme _)* $`).
    pub ids: Vec<i64>,
    /// The waveform at the voice's sample rate, in about `[-1, 1]`.
    pub samples: Vec<f32>,
}

/// The most frames one sentence may have (about 3 minutes at 22 kHz): more means the
/// durations went wild.
const MAX_FRAMES: usize = 16_384;

/// A Piper voice: its configuration and its VITS model (text encoder, duration predictor, flow,
/// HiFi-GAN decoder).
#[derive(Debug, Clone)]
pub struct PiperVoice {
    config: PiperConfig,
    encoder: TextEncoder,
    durations: DurationPredictor,
    flow: Flow,
    decoder: HifiGan,
    device: Device,
}

impl PiperVoice {
    /// Loads `voice.onnx` and `voice.onnx.json` (next to it).
    pub fn open(onnx: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let onnx = onnx.as_ref();
        let json = PathBuf::from(format!("{}.json", onnx.display()));
        let text = std::fs::read_to_string(&json).map_err(|e| Error::io(&json, e))?;
        let config = PiperConfig::from_json(&text)?;
        let file = OnnxFile::open(onnx)?;
        let params = file.parameters();
        // Piper's export stores the phoneme embedding under the unused input name `sid`.
        let w = WeightLoader::new(&params, device)
            .ignore(|n| !["enc_p.", "flow.", "dp."].iter().any(|p| n.starts_with(p)) && n != "sid");
        let embedding = (!w.contains("enc_p.emb.weight")).then_some("sid");
        let enc_cfg = config.encoder_config()?;
        let encoder = TextEncoder::load(&w, "enc_p.", embedding, enc_cfg);
        let flow_cfg = FlowConfig {
            channels: enc_cfg.out_channels,
            hidden: enc_cfg.hidden,
            kernel: 5,
            dilation_rate: 1,
            layers: 4,
            flows: 4,
        };
        let flow = Flow::load(&w, "flow.", flow_cfg);
        // The export folds exp(-dp.flows.0.logs) into a graph constant.
        let folded = "/dp/flows.0/Exp_output_0";
        let inv_scale = match file.contains(folded) {
            true => Some(file.tensor(folded)?.to_f32()?),
            false => None,
        };
        if inv_scale.as_ref().is_some_and(|v| v.len() != 2) {
            return Err(Error::tensor(folded, "expected two values"));
        }
        let durations = DurationPredictor::load(&w, "dp.", enc_cfg.hidden, inv_scale);
        w.finish()?;
        let decoder =
            HifiGan::load(&params, config.decoder_config()?, &HifiGanNames::vits(), device)?;
        Ok(Self { config, encoder, durations, flow, decoder, device: device.clone() })
    }

    /// The configuration.
    pub fn config(&self) -> &PiperConfig {
        &self.config
    }

    /// The text encoder's output for one sentence's phoneme ids.
    pub fn encode(&self, ids: &[i64]) -> Result<TextEncoding> {
        self.encoder.forward(ids)
    }

    /// Log-durations per phoneme for the encoder's hidden states, from `noise` (`[2][t]`
    /// standard normal values) scaled by `noise_w`.
    pub fn log_durations(
        &self,
        enc: &TextEncoding,
        noise: &[f32],
        noise_w: f32,
    ) -> Result<Vec<f32>> {
        let t = enc.x.dims()[2];
        if noise.len() != 2 * t {
            return Err(Error::invalid_argument(
                "noise",
                format!("{} values for {t} phonemes", noise.len()),
            ));
        }
        Ok(self.durations.reverse(&enc.x, noise, noise_w))
    }

    /// Speech for `text`: phonemised with espeak-ng, synthesised sentence by sentence and
    /// joined (raw model output in `[-1, 1]`, at the voice's sample rate). Fails when
    /// espeak-ng cannot be loaded, when the voice does not use espeak phonemes, or as
    /// [`synthesize_ids`](Self::synthesize_ids) does.
    pub fn speak(&self, text: &str, options: &SynthesisOptions) -> Result<crate::wav::Audio> {
        let mut samples = Vec::new();
        for sentence in self.sentences(text, options)? {
            samples.extend(sentence?.samples);
        }
        Ok(crate::wav::Audio::mono(samples, self.config.sample_rate))
    }

    /// Speech for `text` one sentence at a time (for streaming): the iterator synthesises
    /// each sentence when it is asked for the next one. Sentence `i` uses seed `seed + i`.
    pub fn sentences<'a>(
        &'a self,
        text: &str,
        options: &SynthesisOptions,
    ) -> Result<impl Iterator<Item = Result<SpokenSentence>> + 'a> {
        if self.config.phoneme_type != "espeak" {
            return Err(Error::unsupported("Piper phoneme type", self.config.phoneme_type.clone()));
        }
        let sentences = crate::espeak::phonemize(text, &self.config.espeak_voice)?;
        let options = *options;
        Ok(sentences
            .into_iter()
            // An empty sentence (a closing quote after the last period) is skipped, as Piper's
            // C++ runtime does.
            .filter(|p| !p.trim().is_empty())
            .enumerate()
            .map(move |(i, phonemes)| {
                let (ids, _unknown) = self.config.phoneme_ids(&phonemes);
                let opts =
                    SynthesisOptions { seed: options.seed.wrapping_add(i as u64), ..options };
                let samples = self.synthesize_ids(&ids, &opts)?;
                Ok(SpokenSentence { phonemes, ids, samples })
            }))
    }

    /// The waveform for one sentence's phoneme ids (as [`PiperConfig::phoneme_ids`] gives
    /// them): samples in about `[-1, 1]` at the voice's sample rate. The same ids and options
    /// give the same samples.
    ///
    /// Fails when a scale is negative, not finite or above 100 (or `length_scale` is 0), or
    /// when the predicted durations add up to more than 16,384 frames (about three minutes).
    pub fn synthesize_ids(&self, ids: &[i64], options: &SynthesisOptions) -> Result<Vec<f32>> {
        let SynthesisOptions { noise_scale, length_scale, noise_w, seed } = *options;
        for (name, v) in
            [("noise_scale", noise_scale), ("length_scale", length_scale), ("noise_w", noise_w)]
        {
            if !v.is_finite() || v < 0.0 || (name == "length_scale" && v == 0.0) || v > 100.0 {
                return Err(Error::invalid_argument(name, format!("{v}")));
            }
        }
        let enc = self.encode(ids)?;
        let t = ids.len();
        let mut rng = aigc_core::schedulers::SeededNoise::new(seed);
        let noise: Vec<f32> = (0..2 * t).map(|_| rng.next_normal() as f32).collect();
        let logw = self.log_durations(&enc, &noise, noise_w)?;
        let repeats: Vec<usize> =
            logw.iter().map(|l| (l.exp() * length_scale).ceil().max(0.0) as usize).collect();
        let frames: usize = repeats.iter().sum::<usize>().max(1);
        if frames > MAX_FRAMES {
            return Err(Error::invalid_argument(
                "durations",
                format!("{frames} frames for {t} phonemes (at most {MAX_FRAMES})"),
            ));
        }
        // The prior expanded to frames, plus noise scaled by its deviation.
        let c = enc.m_p.dims()[1];
        let (m_p, logs_p) = (host_values(enc.m_p)?, host_values(enc.logs_p)?);
        let mut z = vec![0f32; c * frames];
        for ch in 0..c {
            let mut f = 0;
            for (i, &r) in repeats.iter().enumerate() {
                for _ in 0..r {
                    let eps = if noise_scale > 0.0 { rng.next_normal() as f32 } else { 0.0 };
                    z[ch * frames + f] =
                        m_p[ch * t + i] + eps * logs_p[ch * t + i].exp() * noise_scale;
                    f += 1;
                }
            }
        }
        let z_p = Tensor::<3>::from_data(TensorData::new(z, [1, c, frames]), &self.device);
        let z = host_values(self.flow.reverse(z_p))?;
        self.decode(&z, frames)
    }

    /// The decoder's latents for prior samples `z_p` (`[1, channels, frames]`).
    pub fn flow_reverse(&self, z_p: Tensor<3>) -> Tensor<3> {
        self.flow.reverse(z_p)
    }

    /// The device the voice runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The decoder's waveform for latent frames `z` (`[channels][frames]`, row-major: the
    /// flow's output).
    pub fn decode(&self, z: &[f32], frames: usize) -> Result<Vec<f32>> {
        let c = self.decoder.config().in_channels;
        if z.len() != c * frames || frames == 0 {
            return Err(Error::invalid_argument(
                "latents",
                format!("{} values for {frames} frames of {c} channels", z.len()),
            ));
        }
        let x = Tensor::<3>::from_data(TensorData::new(z.to_vec(), [1, c, frames]), &self.device);
        host_values(self.decoder.forward(x))
    }
}

fn host_values<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| Error::invalid_argument("tensor", format!("{e:?}")))
}
