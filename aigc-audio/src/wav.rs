//! WAV files through `hound`: any PCM width or 32-bit float in, 16-bit PCM or 32-bit float
//! out, samples as f32 in `[-1, 1]`.

use std::path::Path;

use aigc_core::{Error, Result};

/// Audio as f32 samples, interleaved when there is more than one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    /// Samples, `frames * channels` of them, interleaved.
    pub samples: Vec<f32>,
    /// Samples per second (per channel).
    pub sample_rate: u32,
    /// Interleaved channels.
    pub channels: u16,
}

/// How [`write_wav`] stores samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SampleFormat {
    /// 16-bit PCM, values clipped to `[-1, 1]` and scaled by 32767 (as Piper writes).
    #[default]
    Pcm16,
    /// 32-bit IEEE float, unchanged.
    Float32,
}

impl Audio {
    /// Mono audio.
    pub fn mono(samples: Vec<f32>, sample_rate: u32) -> Self {
        Self { samples, sample_rate, channels: 1 }
    }

    /// Frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.samples.len() / self.channels.max(1) as usize
    }

    /// Length in seconds.
    pub fn duration_s(&self) -> f64 {
        self.frames() as f64 / self.sample_rate.max(1) as f64
    }

    /// The channels averaged into one.
    pub fn to_mono(&self) -> Vec<f32> {
        let c = self.channels.max(1) as usize;
        if c == 1 {
            return self.samples.clone();
        }
        self.samples.chunks_exact(c).map(|f| f.iter().sum::<f32>() / c as f32).collect()
    }
}

/// Reads a WAV file: integer PCM of 8 to 32 bits (scaled by `2^(bits-1)`) or 32-bit float.
pub fn read_wav(path: impl AsRef<Path>) -> Result<Audio> {
    let path = path.as_ref();
    let reader = hound::WavReader::open(path).map_err(|e| wav_error(path, e))?;
    read_from(reader, path)
}

/// [`read_wav`] from bytes in memory (`name` is used in errors).
pub fn read_wav_bytes(bytes: &[u8], name: impl AsRef<Path>) -> Result<Audio> {
    let reader = hound::WavReader::new(std::io::Cursor::new(bytes))
        .map_err(|e| wav_error(name.as_ref(), e))?;
    read_from(reader, name.as_ref())
}

fn read_from<R: std::io::Read>(reader: hound::WavReader<R>, path: &Path) -> Result<Audio> {
    let spec = reader.spec();
    if spec.channels == 0 || spec.sample_rate == 0 {
        return Err(Error::format(path, "WAV", 0, "zero channels or sample rate"));
    }
    let samples: std::result::Result<Vec<f32>, hound::Error> = match spec.sample_format {
        hound::SampleFormat::Float if spec.bits_per_sample == 32 => {
            reader.into_samples::<f32>().collect()
        }
        hound::SampleFormat::Int if (1..=32).contains(&spec.bits_per_sample) => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            reader.into_samples::<i32>().map(|s| s.map(|v| v as f32 * scale)).collect()
        }
        _ => {
            return Err(Error::unsupported(
                "WAV sample format",
                format!("{:?} with {} bits", spec.sample_format, spec.bits_per_sample),
            ));
        }
    };
    let samples = samples.map_err(|e| wav_error(path, e))?;
    Ok(Audio { samples, sample_rate: spec.sample_rate, channels: spec.channels })
}

/// Writes `audio` to `path` as `format`.
pub fn write_wav(path: impl AsRef<Path>, audio: &Audio, format: SampleFormat) -> Result<()> {
    let path = path.as_ref();
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    write_to(std::io::BufWriter::new(file), audio, format).map_err(|e| wav_error(path, e))
}

/// [`write_wav`] into bytes in memory.
pub fn wav_bytes(audio: &Audio, format: SampleFormat) -> Result<Vec<u8>> {
    let mut out = std::io::Cursor::new(Vec::new());
    write_to(&mut out, audio, format).map_err(|e| wav_error(Path::new("<memory>"), e))?;
    Ok(out.into_inner())
}

fn write_to<W: std::io::Write + std::io::Seek>(
    sink: W,
    audio: &Audio,
    format: SampleFormat,
) -> std::result::Result<(), hound::Error> {
    let (bits, sample_format) = match format {
        SampleFormat::Pcm16 => (16, hound::SampleFormat::Int),
        SampleFormat::Float32 => (32, hound::SampleFormat::Float),
    };
    let spec = hound::WavSpec {
        channels: audio.channels.max(1),
        sample_rate: audio.sample_rate,
        bits_per_sample: bits,
        sample_format,
    };
    let mut writer = hound::WavWriter::new(sink, spec)?;
    match format {
        SampleFormat::Pcm16 => {
            for &s in &audio.samples {
                writer.write_sample((s.clamp(-1.0, 1.0) * 32767.0).round() as i16)?;
            }
        }
        SampleFormat::Float32 => {
            for &s in &audio.samples {
                writer.write_sample(s)?;
            }
        }
    }
    writer.finalize()
}

fn wav_error(path: &Path, e: hound::Error) -> Error {
    match e {
        hound::Error::IoError(io) => Error::io(path, io),
        other => Error::format(path, "WAV", 0, other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_in_both_formats() {
        let samples: Vec<f32> = (0..200).map(|i| ((i as f32) * 0.05).sin() * 0.9).collect();
        let audio = Audio { samples: samples.clone(), sample_rate: 22050, channels: 2 };
        let back = read_wav_bytes(&wav_bytes(&audio, SampleFormat::Float32).unwrap(), "x").unwrap();
        assert_eq!(back, audio);
        let back = read_wav_bytes(&wav_bytes(&audio, SampleFormat::Pcm16).unwrap(), "x").unwrap();
        assert_eq!((back.sample_rate, back.channels, back.frames()), (22050, 2, 100));
        // Written as round(s * 32767), read back as v / 32768 (as soundfile reads).
        for (g, w) in back.samples.iter().zip(&samples) {
            assert!((g - w).abs() <= 1.5 / 32767.0, "{g} vs {w}");
        }
        assert_eq!(back.to_mono().len(), 100);
    }

    #[test]
    fn clips_and_rejects_garbage() {
        let loud = Audio::mono(vec![2.0, -2.0], 8000);
        let back = read_wav_bytes(&wav_bytes(&loud, SampleFormat::Pcm16).unwrap(), "x").unwrap();
        assert_eq!(back.samples, vec![32767.0 / 32768.0, -32767.0 / 32768.0]);
        let err = read_wav_bytes(b"RIFF\x04\x00\x00\x00WAVE", "bad.wav").unwrap_err();
        assert!(err.to_string().contains("bad.wav"), "{err}");
        let mut truncated = wav_bytes(&loud, SampleFormat::Pcm16).unwrap();
        truncated.truncate(20);
        assert!(read_wav_bytes(&truncated, "cut.wav").is_err());
    }
}
