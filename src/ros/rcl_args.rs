//! The node's ROS command-line arguments, read with rcl's own parser (`rcl_parse_arguments`,
//! the function `rcl_init` uses) before r2r sees them: r2r 0.9.7's `Context::create` panics on
//! any argument rcl refuses (`-p foo`, a params file that is missing or not YAML, a bad
//! `--log-level`), and lets unknown ROS arguments (`--ros-args --bogus`) pass silently where
//! rclcpp refuses them. Also resolves the node's topic names through the remap rules
//! (`rcl_remap_topic_name`), which r2r does not expose, for the graph checks in `qos_watch`.

use r2r_rcl as rcl;
use std::ffi::{c_char, c_int, CStr, CString};

// rcl/remap.h is not in r2r_rcl's bindings; the library is linked by r2r_rcl already.
extern "C" {
    fn rcl_remap_topic_name(
        local_arguments: *const rcl::rcl_arguments_t, global_arguments: *const rcl::rcl_arguments_t,
        topic_name: *const c_char, node_name: *const c_char, node_namespace: *const c_char,
        allocator: rcl::rcl_allocator_t, output_name: *mut *mut c_char,
    ) -> rcl::rcl_ret_t;
}

/// The process's ROS arguments, parsed and checked.
pub struct RosArgs {
    args: rcl::rcl_arguments_t,
}

// The parsed arguments are plain memory owned by this value; rcl reads them without global state.
unsafe impl Send for RosArgs {}

impl RosArgs {
    /// Parses `argv` (program name first) as `rcl_init` will. `Err` is one line: rcl's reason
    /// without its source locations, or the ROS arguments rcl did not recognise.
    pub fn parse(argv: &[String]) -> Result<RosArgs, String> {
        let c_args = argv.iter().map(|a| CString::new(a.as_str())).collect::<Result<Vec<_>, _>>()
            .map_err(|_| "an argument contains a NUL byte".to_string())?;
        let pointers: Vec<*const c_char> = c_args.iter().map(|a| a.as_ptr()).collect();
        let argc = c_int::try_from(pointers.len()).map_err(|_| "too many arguments".to_string())?;
        // SAFETY: `pointers` holds `argc` valid C strings that outlive the call; `args` is
        // zero-initialised as rcl_parse_arguments requires.
        let mut parsed = RosArgs { args: unsafe { rcl::rcl_get_zero_initialized_arguments() } };
        let ret = {
            let _quiet = QuietRcl::new();
            unsafe { rcl::rcl_parse_arguments(argc, pointers.as_ptr(), allocator(), &mut parsed.args) }
        };
        if ret != rcl::RCL_RET_OK as rcl::rcl_ret_t {
            return Err(take_rcl_error());
        }
        let unknown = parsed.unparsed_ros(argv);
        if !unknown.is_empty() {
            return Err(format!("unknown ROS argument(s): {} (see `ros2 run --help` for --ros-args)", unknown.join(" ")));
        }
        Ok(parsed)
    }

    /// The arguments after `--ros-args` that rcl did not recognise.
    fn unparsed_ros(&self, argv: &[String]) -> Vec<String> {
        let mut indices: *mut c_int = std::ptr::null_mut();
        // SAFETY: `self.args` was parsed successfully; rcl allocates `indices` with `allocator()`.
        let count = unsafe { rcl::rcl_arguments_get_count_unparsed_ros(&self.args) };
        if count <= 0 || unsafe { rcl::rcl_arguments_get_unparsed_ros(&self.args, allocator(), &mut indices) } != 0 {
            return Vec::new();
        }
        if indices.is_null() {
            return Vec::new();
        }
        // SAFETY: rcl wrote `count` indices into `indices`.
        let found = unsafe { std::slice::from_raw_parts(indices, count as usize) }
            .iter()
            .filter_map(|&i| argv.get(usize::try_from(i).ok()?).cloned())
            .collect();
        free(indices.cast());
        found
    }

    /// The fully qualified name a relative topic `name` of node `node_name` in `namespace`
    /// resolves to, after the `-r from:=to` rules (`speech_text` → `/asr/text`).
    pub fn resolve_topic(&self, name: &str, node_name: &str, namespace: &str) -> String {
        let expanded = format!("{}/{name}", namespace.trim_end_matches('/'));
        let (Ok(topic), Ok(node), Ok(ns)) = (CString::new(expanded.as_str()), CString::new(node_name), CString::new(namespace)) else {
            return expanded;
        };
        let mut out: *mut c_char = std::ptr::null_mut();
        // SAFETY: all strings are valid for the call; rcl allocates `out` with `allocator()` or leaves it NULL.
        let ret = unsafe {
            rcl_remap_topic_name(std::ptr::null(), &self.args, topic.as_ptr(), node.as_ptr(), ns.as_ptr(), allocator(), &mut out)
        };
        if ret != rcl::RCL_RET_OK as rcl::rcl_ret_t || out.is_null() {
            let _ = take_rcl_error();
            return expanded;
        }
        // SAFETY: `out` is a NUL-terminated string allocated by rcl.
        let remapped = unsafe { CStr::from_ptr(out) }.to_string_lossy().into_owned();
        free(out.cast());
        remapped
    }
}

impl Drop for RosArgs {
    fn drop(&mut self) {
        if !self.args.impl_.is_null() {
            // SAFETY: parsed by rcl_parse_arguments, finalised once.
            unsafe { rcl::rcl_arguments_fini(&mut self.args) };
        }
    }
}

/// Silences rcl's own log lines while it parses here (they repeat, on lines of their own, what
/// the one-line error says); `rcl_init` parses again with them on.
struct QuietRcl(c_int);

const RCL_LOGGER: &CStr = c"rcl";

impl QuietRcl {
    fn new() -> QuietRcl {
        // SAFETY: initialising rcutils logging is idempotent; the name is a valid C string.
        unsafe {
            rcl::rcutils_logging_initialize();
            let previous = rcl::rcutils_logging_get_logger_level(RCL_LOGGER.as_ptr());
            rcl::rcutils_logging_set_logger_level(RCL_LOGGER.as_ptr(), rcl::RCUTILS_LOG_SEVERITY::RCUTILS_LOG_SEVERITY_FATAL as c_int);
            QuietRcl(previous)
        }
    }
}

impl Drop for QuietRcl {
    fn drop(&mut self) {
        // SAFETY: as in `new`; restores the level found there (UNSET included).
        unsafe { rcl::rcutils_logging_set_logger_level(RCL_LOGGER.as_ptr(), self.0) };
    }
}

fn allocator() -> rcl::rcl_allocator_t {
    // SAFETY: returns a struct of function pointers to malloc and friends.
    unsafe { rcl::rcutils_get_default_allocator() }
}

fn free(pointer: *mut std::ffi::c_void) {
    let a = allocator();
    if let Some(deallocate) = a.deallocate {
        // SAFETY: `pointer` was allocated by rcl with the default allocator.
        unsafe { deallocate(pointer, a.state) };
    }
}

/// rcutils' error message, reset, without the ", at /path/file.c:123" locations rcl appends.
fn take_rcl_error() -> String {
    // SAFETY: the error state is thread-local; the returned buffer is NUL-terminated.
    let raw = unsafe { rcl::rcutils_get_error_string() };
    let text = unsafe { CStr::from_ptr(raw.str_.as_ptr()) }.to_string_lossy().into_owned();
    unsafe { rcl::rcutils_reset_error() };
    strip_locations(&text)
}

fn strip_locations(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in text.split(", at ").enumerate() {
        let is_location = i > 0 && part.rsplit_once(':').is_some_and(|(path, line)| path.contains('/') && line.chars().all(|c| c.is_ascii_digit()));
        if !is_location {
            if i > 0 {
                out.push_str(", at ");
            }
            out.push_str(part);
        }
    }
    out.replace('\n', " ").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn malformed_and_unknown_arguments_are_one_line_reasons() {
        let err = RosArgs::parse(&argv("node --ros-args -p foo")).err().unwrap();
        assert!(err.starts_with("Couldn't parse parameter override rule: '-p foo'"), "{err}");
        assert!(!err.contains(".c:") && !err.contains('\n'), "{err}");
        let err = RosArgs::parse(&argv("node --ros-args --params-file /nonexistent/p.yaml")).err().unwrap();
        assert!(err.contains("/nonexistent/p.yaml"), "{err}");
        let err = RosArgs::parse(&argv("node --ros-args --bogus -p a:=1")).err().unwrap();
        assert_eq!(err, "unknown ROS argument(s): --bogus (see `ros2 run --help` for --ros-args)");
        assert!(RosArgs::parse(&argv("node --ros-args -p a:=1 -r __ns:=/x")).is_ok());
    }

    #[test]
    fn topics_resolve_through_remap_rules() {
        let args = RosArgs::parse(&argv("node --ros-args -r speech_text:=/asr/text -r utterance:=in/utt")).unwrap();
        assert_eq!(args.resolve_topic("speech_text", "ollama_bridge", "/robot1"), "/asr/text");
        assert_eq!(args.resolve_topic("utterance", "ollama_bridge", "/robot1"), "/robot1/in/utt");
        assert_eq!(args.resolve_topic("response_final", "ollama_bridge", "/"), "/response_final");
    }

    #[test]
    fn rcl_locations_are_stripped() {
        assert_eq!(strip_locations("Bad rule 'x', at /p/src/a.c:12, at /p/b.c:3"), "Bad rule 'x'");
        assert_eq!(strip_locations("a, at b"), "a, at b");
    }
}
