//! Prints a model file's metadata and tensor table, or some dequantized values of one tensor.
//!
//! ```text
//! cargo run --release -p aigc-core --example inspect -- FILE|MODEL_ID [--all-metadata]
//! cargo run --release -p aigc-core --example inspect -- FILE|MODEL_ID --dequant NAME [--count N] [--offset K]
//! ```
//!
//! FILE is a GGUF, safetensors (or `model.safetensors.index.json`), ONNX or CTranslate2
//! `model.bin` file, or a model id known to `scripts/fetch-models.sh`. With `--dequant`, the
//! first N (default 16) values of tensor NAME, starting at element K (default 0), are printed
//! as a JSON array of f32 values.

use std::io::Write;
use std::process::ExitCode;

use aigc_core::weights::WeightFile;

struct Args {
    file: String,
    dequant: Option<String>,
    count: usize,
    offset: usize,
    all_metadata: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut out =
        Args { file: String::new(), dequant: None, count: 16, offset: 0, all_metadata: false };
    let number = |v: Option<String>, flag: &str| -> Result<usize, String> {
        v.ok_or(format!("{flag} needs a value"))?.parse().map_err(|e| format!("{flag}: {e}"))
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dequant" => out.dequant = Some(args.next().ok_or("--dequant needs a tensor name")?),
            "--count" => out.count = number(args.next(), "--count")?,
            "--offset" => out.offset = number(args.next(), "--offset")?,
            "--all-metadata" => out.all_metadata = true,
            "-h" | "--help" => return Err(String::new()),
            f if out.file.is_empty() && !f.starts_with("--") => out.file = f.to_string(),
            other => return Err(format!("unexpected argument `{other}`")),
        }
    }
    if out.file.is_empty() {
        return Err("no file given".into());
    }
    Ok(out)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!(
                "usage: inspect FILE|MODEL_ID [--all-metadata] [--dequant NAME [--count N] [--offset K]]"
            );
            return ExitCode::from(2);
        }
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let result = run(&args, &mut out).and_then(|()| out.flush().map_err(Failure::Io));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`inspect FILE | head`): not an error.
        Err(Failure::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(Failure::Io(e)) => {
            eprintln!("error: writing the output: {e}");
            ExitCode::FAILURE
        }
        Err(Failure::Aigc(e)) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    Aigc(aigc_core::Error),
    Io(std::io::Error),
}

impl From<aigc_core::Error> for Failure {
    fn from(e: aigc_core::Error) -> Self {
        Failure::Aigc(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Io(e)
    }
}

fn run(args: &Args, out: &mut impl Write) -> Result<(), Failure> {
    let path = aigc_core::models::resolve(&args.file)?;
    let file = WeightFile::open(&path)?;
    let source = file.as_source();
    if let Some(name) = &args.dequant {
        let view = source.tensor(name)?;
        let values = view.to_f32_range(args.offset, args.count)?;
        writeln!(out, "{}", serde_json::to_string(&values).expect("f32 values serialize"))?;
        return Ok(());
    }

    writeln!(out, "file: {}", path.display())?;
    writeln!(out, "format: {}", file.format_name())?;
    let metadata: Vec<(String, String)> = match &file {
        WeightFile::Gguf(g) => {
            let mut m = vec![
                ("gguf.version".to_string(), g.version().to_string()),
                ("gguf.alignment".to_string(), g.alignment().to_string()),
                ("gguf.data_offset".to_string(), g.data_offset().to_string()),
            ];
            m.extend(g.metadata().iter().map(|(k, v)| (k.clone(), v.to_string())));
            m
        }
        WeightFile::Safetensors(s) => {
            let mut m: Vec<(String, String)> =
                s.files().iter().map(|f| ("file".to_string(), f.display().to_string())).collect();
            let mut kv: Vec<_> = s.metadata().into_iter().flatten().collect();
            kv.sort();
            m.extend(kv.into_iter().map(|(k, v)| (k.clone(), format!("{v:?}"))));
            m
        }
        WeightFile::Onnx(o) => o.metadata(),
        WeightFile::Ct2(c) => c.metadata(),
    };
    writeln!(out, "metadata ({} entries):", metadata.len())?;
    for (k, v) in &metadata {
        let v = if !args.all_metadata && v.chars().count() > 120 {
            format!("{}... ({} chars)", v.chars().take(120).collect::<String>(), v.chars().count())
        } else {
            v.clone()
        };
        writeln!(out, "  {k} = {v}")?;
    }
    let names = source.tensor_names();
    writeln!(out, "tensors ({}):", names.len())?;
    let width = names.iter().map(|n| n.len()).max().unwrap_or(0);
    let mut total = 0usize;
    for name in &names {
        let info = source.tensor_info(name).expect("listed tensor exists");
        total += info.dtype.byte_len(&info.shape).unwrap_or(0);
        writeln!(out, "  {name:<width$}  {:<7} {:?}", info.dtype.name(), info.shape)?;
    }
    writeln!(out, "total tensor bytes: {total}")?;
    Ok(())
}
