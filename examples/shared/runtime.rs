//! The tokio runtime a benchmark program runs on (`--runtime`), shared by the benchmarks.

/// tokio's two runtimes.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Runtime {
    /// tokio's default: a worker thread per core; every hop between tasks may wake a thread.
    MultiThread,
    /// One thread: no cross-thread wake-ups.
    CurrentThread,
}

impl Runtime {
    /// The flag's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::MultiThread => "multi-thread",
            Runtime::CurrentThread => "current-thread",
        }
    }

    /// Builds it, with I/O and timers.
    pub fn build(self) -> tokio::runtime::Runtime {
        match self {
            Runtime::MultiThread => tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build(),
            Runtime::CurrentThread => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
        }
        .expect("tokio runtime")
    }
}
