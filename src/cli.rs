//! The command line outside `--ros-args`: `--help` (usage and every parameter with its type,
//! range and default, printed without starting ROS) and the refusal of anything else. The ROS
//! arguments themselves are checked by rcl's parser (`ros::rcl_args`). No ROS here.

use crate::config::{Params, PARAMS};

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Command {
    /// Print [`usage`] and exit 0.
    Help,
    /// Start the node.
    Run,
}

/// Exit code of a bad command line or parameter value (as `ros2` and argparse use it).
pub const EXIT_USAGE: u8 = 2;

/// Reads `argv` (program name first). Arguments between `--ros-args` and `--` (or the end)
/// belong to ROS; of the others only `-h` / `--help` exist. `Err` is a one-line reason.
pub fn parse(argv: &[String]) -> Result<Command, String> {
    let mut in_ros_args = false;
    let mut help = false;
    for arg in argv.iter().skip(1) {
        match arg.as_str() {
            "--ros-args" => in_ros_args = true,
            "--" if in_ros_args => in_ros_args = false,
            _ if in_ros_args => {}
            "-h" | "--help" => help = true,
            other => return Err(format!("unknown argument '{other}': parameters go after --ros-args (see --help)")),
        }
    }
    Ok(if help { Command::Help } else { Command::Run })
}

/// The `--help` text: usage, topics, every parameter (type, range, default, meaning), exit codes.
pub fn usage() -> String {
    let mut out = String::from(
        "ollama_bridge: a ROS 2 node that lets a robot talk to an LLM served by Ollama.\n\n\
         Usage: ollama_bridge [--help] [--ros-args [-p NAME:=VALUE]... [--params-file FILE]\n\
         \x20                    [-r FROM:=TO]... [-r __ns:=/NAMESPACE] [--log-level LEVEL]]\n\n\
         Topics (relative names, remap with -r): speech_text (std_msgs/msg/String), utterance and spoken\n\
         in; response_partial, response_final, response_text, response_sentence(_text), response_thinking,\n\
         session_state, tool_calls and /diagnostics out; services reset, cancel, set_model, list_models;\n\
         actions chat and pull_model. See the README for types and QoS.\n\n\
         Parameters (ros2 param list/get/set/describe; read-only ones are read at start only):\n",
    );
    let defaults = Params::with_defaults();
    for spec in PARAMS {
        let default = defaults.exposed(spec.name).map(|v| v.to_string()).unwrap_or_default();
        let range = spec.kind.constraint().map(|c| format!(", {c}")).unwrap_or_default();
        let read_only = if spec.read_only { ", read-only" } else { "" };
        out += &format!("  {} ({}{range}{read_only}; default {default})\n      {}\n",
            spec.name, spec.kind.type_name(), spec.description());
    }
    out += "\nEnvironment: OLLAMA_HOST (server when ollama_url is \"\"), OLLAMA_API_KEY (bearer token), \
            OPENAI_API_KEY (bearer token with api openai, before OLLAMA_API_KEY).\n\
            Exit codes: 0 stopped by SIGINT/SIGTERM, 1 ROS could not start, 2 bad arguments or parameter values.\n";
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn help_and_ros_arguments() {
        assert_eq!(parse(&argv("node")), Ok(Command::Run));
        assert_eq!(parse(&argv("node --help")), Ok(Command::Help));
        assert_eq!(parse(&argv("node --ros-args -p a:=1 -- -h")), Ok(Command::Help));
        assert_eq!(parse(&argv("node --ros-args -p a:=1 --help")), Ok(Command::Run), "inside --ros-args it is rcl's");
        assert!(parse(&argv("node --model x")).unwrap_err().contains("unknown argument '--model'"));
        assert!(parse(&argv("node --ros-args -p a:=1 -- extra")).is_err());
    }

    #[test]
    fn usage_lists_every_parameter_with_its_default() {
        let text = usage();
        for spec in PARAMS {
            assert!(text.contains(&format!("  {} (", spec.name)), "{}", spec.name);
        }
        assert!(text.contains("max_retries (integer, 0 to 100; default 2)"), "{text}");
    }
}
