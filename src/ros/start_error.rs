//! Why the node could not start, and the exit code that says so: 2 for what the user gave
//! (arguments rcl refuses, parameter values out of type or range), 1 for ROS or the system.

use crate::config::InvalidParam;

/// Why the node could not start.
#[derive(Debug)]
pub enum StartError {
    /// A command-line argument (one line from rcl's parser).
    Args(String),
    /// A parameter value given at start.
    Param(InvalidParam),
    Ros(r2r::Error),
    /// rcl_init failed for a reason other than the arguments (e.g. a malformed `ROS_DOMAIN_ID`).
    RosInit(String),
    Io(std::io::Error),
    /// A start-time setting is unusable (e.g. `tools_file`); the text says why and what to do.
    Config(String),
}

impl StartError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::Args(_) | StartError::Param(_) | StartError::Config(_) => crate::cli::EXIT_USAGE,
            StartError::Ros(_) | StartError::RosInit(_) | StartError::Io(_) => 1,
        }
    }
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Args(e) => write!(f, "invalid --ros-args: {e}"),
            StartError::Param(e) => write!(f, "{e}"),
            StartError::Ros(e) => write!(f, "ROS error: {e}"),
            StartError::RosInit(e) => write!(f, "ROS could not start: {e}"),
            StartError::Io(e) => write!(f, "{e}"),
            StartError::Config(e) => write!(f, "{e}"),
        }
    }
}
impl std::error::Error for StartError {}
impl From<r2r::Error> for StartError {
    fn from(e: r2r::Error) -> Self {
        StartError::Ros(e)
    }
}
impl From<InvalidParam> for StartError {
    fn from(e: InvalidParam) -> Self {
        StartError::Param(e)
    }
}
impl From<std::io::Error> for StartError {
    fn from(e: std::io::Error) -> Self {
        StartError::Io(e)
    }
}

/// `r2r::Context::create`, whose failures are panics in r2r 0.9.7 (`check_rcl_ret!` in
/// `context.rs`): caught here, without the panic message and backtrace on the terminal.
pub fn create_context() -> Result<r2r::Context, StartError> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let created = std::panic::catch_unwind(r2r::Context::create);
    std::panic::set_hook(hook);
    match created {
        Ok(context) => Ok(context?),
        Err(payload) => {
            let message = payload.downcast_ref::<String>().cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "rcl_init failed".into());
            Err(StartError::RosInit(message.split(", at /").next().unwrap_or_default().to_string()))
        }
    }
}
