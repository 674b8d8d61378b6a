//! `ollama_bridge`: a ROS 2 node that lets a robot talk to an LLM served by Ollama.
//!
//! ```text
//! ollama_bridge --help
//! ollama_bridge --ros-args -p model:=llama3.2 -p ollama_url:=http://gpu-box:11434
//! ros2 topic pub --once speech_text std_msgs/msg/String "{data: 'Hello robot'}"
//! ros2 topic echo response_text
//! ros2 service call reset ollama_bridge_msgs/srv/Reset "{session_id: ''}"
//! ros2 service call set_model ollama_bridge_msgs/srv/SetModel "{model: 'qwen3:0.6b'}"
//! ```
//!
//! Exit codes: 0 after SIGINT/SIGTERM, 1 when ROS cannot start, 2 for bad arguments or
//! parameter values (one line on the log saying which).

use ollama_bridge::cli::{self, Command, EXIT_USAGE};
use ollama_bridge::ros::logging;
use std::process::ExitCode;
use tokio::signal::unix::{signal, SignalKind};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match cli::parse(&args) {
        Ok(Command::Help) => {
            print!("{}", cli::usage());
            return ExitCode::SUCCESS;
        }
        Ok(Command::Run) => {}
        Err(e) => {
            eprintln!("ollama_bridge: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    }
    logging::init(logging::level_from_args(&args));
    let shutdown = async {
        match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => log::info!("SIGINT received"),
                    _ = term.recv() => log::info!("SIGTERM received"),
                }
            }
            _ => {
                log::error!("cannot install signal handlers; stop the node with SIGKILL");
                std::future::pending::<()>().await
            }
        }
    };
    match ollama_bridge::ros::run(&args, shutdown) {
        Ok(()) => {
            log::info!("stopped cleanly");
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("cannot start: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
