//! The smallest r2r relay with the bridge's message types: every `utterance` comes straight back
//! as one `response_partial` (its text) and one `response_final`. `scripts/bench` uses it as the
//! floor of the bridge's added latency (one rclpy → r2r → rclpy round trip) and of its memory (the
//! RSS of a minimal r2r node), and to compare a waiting spin loop with a polling one.
//!
//! ```text
//! cargo run --release --example echo_node -- --ros-args -r __ns:=/echo
//! cargo run --release --example echo_node -- --spin poll --poll-ms 10 --ros-args -r __ns:=/echo
//! ros2 topic pub --once /echo/utterance ollama_bridge_msgs/msg/Utterance "{session_id: a, text: hi}"
//! ```
//!
//! `--spin wait` (default) is the node's loop: `spin_once` blocks in the rcl wait set until
//! something arrives (100 ms at most, only to notice shutdown), then r2r's queues are drained.
//! `--spin poll` is the loop of r2r's examples and many user nodes: `spin_once` without waiting,
//! then a fixed sleep, so every message waits for the end of the current sleep.

use futures::executor::LocalPool;
use futures::task::LocalSpawnExt;
use futures::StreamExt;
use r2r::ollama_bridge_msgs::msg::{Response, ResponseChunk, Utterance};
use r2r::QosProfile;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

/// Same QoS as the bridge's inputs and outputs (reliable, depth 1000).
const QOS: QosProfile = QosProfile::default().reliable().keep_last(1000);

enum Spin {
    /// Block in `spin_once` until an event (the bridge's loop).
    Wait,
    /// `spin_once(0)` then sleep this long (a polling loop).
    Poll(Duration),
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let spin = parse_spin(std::env::args().take_while(|a| a != "--ros-args").collect())?;
    // r2r installs no signal handler: leave the loop on SIGINT/SIGTERM so DDS shuts down cleanly.
    // The handlers are installed before the node is discoverable, so an early SIGINT is clean too.
    let running = Arc::new(AtomicBool::new(true));
    let signals = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (mut int, mut term) = {
        let _entered = signals.enter();
        (signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?)
    };
    let flag = running.clone();
    std::thread::spawn(move || {
        signals.block_on(async { tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} } });
        flag.store(false, Ordering::Release);
    });

    let ctx = r2r::Context::create()?;
    let mut node = r2r::Node::create(ctx, "echo_node", "")?;
    let mut inputs = node.subscribe::<Utterance>("utterance", QOS)?;
    let partials = node.create_publisher::<ResponseChunk>("response_partial", QOS)?;
    let finals = node.create_publisher::<Response>("response_final", QOS)?;

    let mut pool = LocalPool::new();
    pool.spawner().spawn_local(async move {
        let mut request_id = 0u64;
        while let Some(u) = inputs.next().await {
            request_id += 1;
            let chunk = ResponseChunk { session_id: u.session_id.clone(), request_id, seq: 0, text: u.text.clone() };
            let answer = Response { session_id: u.session_id, request_id, text: u.text.clone(), prompt: u.text,
                done_reason: "stop".into(), ..Default::default() };
            if let Err(e) = partials.publish(&chunk).and_then(|_| finals.publish(&answer)) {
                eprintln!("echo_node: publish failed: {e}");
            }
        }
    })?;

    println!("echo_node ready ({})", match spin { Spin::Wait => "wait".to_string(), Spin::Poll(d) => format!("poll {d:?}") });
    while running.load(Ordering::Acquire) {
        match spin {
            Spin::Wait => node.spin_once(Duration::from_millis(100)),
            Spin::Poll(sleep) => {
                std::thread::sleep(sleep);
                node.spin_once(Duration::ZERO);
            }
        }
        pool.run_until_stalled();
    }
    Ok(())
}

fn parse_spin(args: Vec<String>) -> Result<Spin, String> {
    let mut spin = Spin::Wait;
    let mut poll = Duration::from_millis(10);
    let mut it = args.iter().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--spin" => match it.next().map(String::as_str) {
                Some("wait") => spin = Spin::Wait,
                Some("poll") => spin = Spin::Poll(poll),
                other => return Err(format!("--spin wait|poll, not {other:?}")),
            },
            "--poll-ms" => {
                let ms: u64 = it.next().and_then(|v| v.parse().ok()).ok_or("--poll-ms takes milliseconds")?;
                poll = Duration::from_millis(ms);
                if let Spin::Poll(_) = spin {
                    spin = Spin::Poll(poll);
                }
            }
            other => return Err(format!("unknown argument {other:?} (--spin wait|poll, --poll-ms N)")),
        }
    }
    if let Spin::Poll(_) = spin {
        spin = Spin::Poll(poll);
    }
    Ok(spin)
}
