//! The runtime's error type.

/// Everything that can go wrong at run time, each with a message naming the problem.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    /// An argument is out of its valid range or inconsistent with another.
    #[error("{0}")]
    Invalid(String),
    /// A value became NaN or infinite during sampling.
    #[error("non-finite value at step {step} (t = {t}): {what}")]
    NonFinite {
        /// The sampler step (0-based).
        step: usize,
        /// The time of that step.
        t: f64,
        /// What became non-finite.
        what: &'static str,
    },
    /// A sampler step failed.
    #[error("step {step} (t = {t}): {source}")]
    Step {
        /// The sampler step (0-based).
        step: usize,
        /// The time of the evaluation that failed.
        t: f64,
        /// What went wrong.
        source: Box<Error>,
    },
    /// Training stopped: a loss or gradient became non-finite. The weights are those of
    /// the previous step; checkpoints already written are untouched.
    #[error(
        "training stopped at step {step}: {message}; the last good weights and checkpoint are kept"
    )]
    Training {
        /// The step (1-based) that failed.
        step: u64,
        /// What went wrong.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A file's contents are malformed.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// `Result` with the runtime's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// An [`Error::Invalid`] with a formatted message.
macro_rules! invalid {
    ($($arg:tt)*) => {
        $crate::error::Error::Invalid(format!($($arg)*))
    };
}
pub(crate) use invalid;
