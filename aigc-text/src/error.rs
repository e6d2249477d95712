//! The error type of `aigc-text`.

/// Errors returned by `aigc-text`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading weights, choosing a device, or anything else `aigc-core` reports.
    #[error(transparent)]
    Core(#[from] aigc_core::Error),

    /// The tokenizer could not be built, or failed on some input.
    #[error("tokenizer: {0}")]
    Tokenizer(String),

    /// A chat template could not be parsed or rendered, or the model has none.
    #[error("chat template: {0}")]
    Template(String),

    /// The model's configuration (GGUF metadata or `config.json`) is missing a value or holds
    /// an impossible one.
    #[error("model config ({source_name}): {reason}")]
    Config {
        /// Where the configuration came from.
        source_name: String,
        /// What is wrong.
        reason: String,
    },

    /// The prompt (plus the tokens asked for) does not fit the context.
    #[error(
        "the prompt has {prompt_tokens} tokens but the context holds {context} (with {max_new_tokens} new tokens asked for)"
    )]
    ContextOverflow {
        /// Tokens in the prompt.
        prompt_tokens: usize,
        /// Tokens that generation would add at most.
        max_new_tokens: usize,
        /// The context length of the generator.
        context: usize,
    },

    /// A generation parameter is out of range.
    #[error("invalid argument `{name}`: {reason}")]
    InvalidArgument {
        /// The argument's name.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn config(source_name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config { source_name: source_name.into(), reason: reason.into() }
    }
}
