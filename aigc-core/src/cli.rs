//! Pieces for command-line programs built on aigc (the workspace's examples use them): flags
//! with typed values, a progress bar on standard error, and the exit convention (a usage
//! error exits with status 2 after the usage, a failed run with status 1).
//!
//! ```no_run
//! use aigc_core::cli::{Flags, Progress};
//!
//! struct Args {
//!     steps: usize,
//!     out: String,
//! }
//!
//! fn parse() -> Result<Args, String> {
//!     let mut args = Args { steps: 4, out: "out.png".into() };
//!     let mut flags = Flags::from_env();
//!     while let Some(flag) = flags.next() {
//!         match flag.as_str() {
//!             "--steps" => args.steps = flags.parse()?,
//!             "--out" => args.out = flags.value()?,
//!             "-h" | "--help" => return Err(String::new()),
//!             other => return Err(format!("unknown argument `{other}`")),
//!         }
//!     }
//!     Ok(args)
//! }
//!
//! fn run(args: Args) -> Result<(), String> {
//!     let bar = Progress::new("denoising");
//!     for step in 1..=args.steps {
//!         bar.update(step, args.steps);
//!     }
//!     bar.finish();
//!     println!("wrote {}", args.out);
//!     Ok(())
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     aigc_core::cli::main(parse, run, "usage: demo [--steps N] [--out FILE]")
//! }
//! ```

use std::io::Write;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// Command-line arguments read flag by flag: [`next`](Self::next) gives each argument,
/// [`value`](Self::value) and [`parse`](Self::parse) the one after the last flag, with errors
/// that name the flag.
#[derive(Debug)]
pub struct Flags {
    args: std::vec::IntoIter<String>,
    flag: String,
}

impl Flags {
    /// The process's arguments after the program's name.
    pub fn from_env() -> Self {
        Self::new(std::env::args().skip(1))
    }

    /// The given arguments (without a program name).
    pub fn new(args: impl IntoIterator<Item = String>) -> Self {
        Self { args: args.into_iter().collect::<Vec<_>>().into_iter(), flag: String::new() }
    }

    /// The next argument (a flag or a positional argument), `None` after the last.
    #[allow(clippy::should_implement_trait)] // values are read between calls: not an iterator
    pub fn next(&mut self) -> Option<String> {
        let arg = self.args.next()?;
        self.flag.clone_from(&arg);
        Some(arg)
    }

    /// The argument after the last flag: `"--out needs a value"` when there is none.
    pub fn value(&mut self) -> Result<String, String> {
        self.args.next().ok_or_else(|| format!("{} needs a value", self.flag))
    }

    /// [`value`](Self::value) parsed as a `T`: `"--steps: `x` is not valid"` when it is not.
    pub fn parse<T: FromStr>(&mut self) -> Result<T, String> {
        let v = self.value()?;
        v.parse().map_err(|_| format!("{}: `{v}` is not a valid value", self.flag))
    }
}

/// A progress bar redrawn in place on standard error: `label [#####     ] 3/10 1.2s`.
#[derive(Debug, Clone)]
pub struct Progress {
    label: String,
    start: Instant,
}

impl Progress {
    /// Width of the bar in characters.
    const WIDTH: usize = 30;

    /// A bar for `label`, its clock started now.
    pub fn new(label: impl Into<String>) -> Self {
        Self { label: label.into(), start: Instant::now() }
    }

    /// Redraws the bar at `done` of `total`.
    pub fn update(&self, done: usize, total: usize) {
        let filled = (Self::WIDTH * done / total.max(1)).min(Self::WIDTH);
        eprint!(
            "\r{} [{}{}] {done}/{total} {:.1}s",
            self.label,
            "#".repeat(filled),
            " ".repeat(Self::WIDTH - filled),
            self.elapsed().as_secs_f32()
        );
        let _ = std::io::stderr().flush();
    }

    /// Ends the bar's line.
    pub fn finish(&self) {
        eprintln!();
    }

    /// Time since the bar was made.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

/// Runs a command-line program: `parse` reads the arguments, `run` does the work. A parse
/// error prints `error: ...` (unless empty, as `--help` returns) and `usage` on standard error
/// and exits with status 2; a run error prints `error: ...` and exits with status 1.
pub fn main<A>(
    parse: impl FnOnce() -> Result<A, String>,
    run: impl FnOnce(A) -> Result<(), String>,
    usage: &str,
) -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_name_the_flag_in_errors() {
        let mut f = Flags::new(["--steps", "4", "--out", "--seed", "x"].map(String::from));
        assert_eq!(f.next().as_deref(), Some("--steps"));
        assert_eq!(f.parse::<usize>(), Ok(4));
        assert_eq!(f.next().as_deref(), Some("--out"));
        assert_eq!(f.value().as_deref(), Ok("--seed"));
        assert_eq!(f.next().as_deref(), Some("x"));
        assert_eq!(f.parse::<u64>(), Err("x needs a value".to_string()));
        let mut g = Flags::new(["--seed", "x"].map(String::from));
        g.next();
        assert_eq!(g.parse::<u64>(), Err("--seed: `x` is not a valid value".to_string()));
        assert_eq!(g.next(), None);
    }
}
