//! The bridge's background work: one worker per session that runs its queue (the exchange,
//! then commit, then answer), and the expiry of idle sessions.

use super::{printable, Inner};
use crate::exchange;
use crate::outputs::{Ending, SessionState};
use crate::session::{Request, Turn};
use std::sync::Arc;
use std::time::Duration;

/// Works through one session's queue, one job at a time, until it is empty.
pub(super) async fn run_session(inner: Arc<Inner>, session_id: String) {
    while let Some(job) = inner.store.next_job(&session_id, &inner.shutdown) {
        let config = inner.config.get();
        let permit = tokio::select! {
            biased;
            _ = job.cancel.cancelled() => None,
            permit = inner.limiter.acquire() => permit.ok(),
        };
        let outcome = match permit {
            Some(_permit) => {
                inner.outputs.state(&session_id, job.request.id, SessionState::Thinking);
                let senses = inner.senses.get().map(Arc::as_ref);
                let route = inner.fleet(&config).map(|fleet| fleet.route(&session_id, &config.model));
                exchange::run(route, &config, &job, inner.outputs.as_ref(), senses, &inner.windows).await
            }
            None => {
                inner.reject(job.request.clone(), &config, Ending::Cancelled);
                inner.store.finish(&session_id, job.epoch, None, 0, config.max_history_turns);
                continue;
            }
        };
        let response = &outcome.response;
        log::log!(if response.ending.error().is_empty() { log::Level::Info } else { log::Level::Warn }, "request {} (session '{}'): {} after {:.2}s, {} chars out{}", response.request_id,
            printable(&session_id), response.ending.done_reason(), response.total_time_s, response.text.len(),
            if response.ending.error().is_empty() { String::new() } else { format!(": {}", response.ending.error()) });
        // A cancelled answer enters the history as far as the text-to-speech node said it.
        let turn = match (&response.ending, outcome.turn) {
            (Ending::Cancelled, None) => spoken_turn(&job.request, inner.store.spoken(&session_id, job.request.id)),
            (_, turn) => turn,
        };
        // Commit, then answer: a listener that saw the final can rely on the exchange being saved.
        let outcome_turn = turn.clone();
        if inner.store.finish(&session_id, job.epoch, outcome_turn, outcome.dropped_turns, config.max_history_turns) {
            if let (Some(files), Some(turn)) = (inner.history_files.clone(), turn) {
                // write + fsync on a blocking thread: the other sessions' streams keep flowing
                let (store, session, epoch, max_turns) =
                    (inner.store.clone(), session_id.clone(), job.epoch, config.max_history_turns);
                let saved = tokio::task::spawn_blocking(move || {
                    // checked again under the files' lock: a reset in between must not bring it back
                    files.append_if(&session, &turn, max_turns, || store.is_current(&session, epoch))
                })
                .await;
                match saved {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => log::error!("could not save the exchange of session '{}': {e}", printable(&session_id)),
                    Err(e) => log::error!("saving the exchange of session '{}' failed: {e}", printable(&session_id)),
                }
            }
        }
        inner.outputs.finished(response);
        let state = if response.ending.error().is_empty() { SessionState::Idle } else { SessionState::Error };
        inner.outputs.state(&session_id, response.request_id, state);
    }
}

/// The exchange of a cancelled request as far as it was spoken (`None` when nothing was).
fn spoken_turn(request: &Request, spoken: String) -> Option<Turn> {
    let spoken = spoken.trim();
    (!spoken.is_empty()).then(|| Turn::new(request.text.clone(), spoken))
}

/// Forgets idle sessions after `session_ttl_s`, checking once a second.
pub(super) async fn expire_idle_sessions(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = inner.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Some(ttl) = inner.config.get().session_ttl {
            for id in inner.store.expire_idle(ttl) {
                log::info!("session '{}' forgotten after {:.0}s idle (session_ttl_s)", printable(&id), ttl.as_secs_f64());
                if let Some(Err(e)) = inner.history_files.as_ref().map(|files| files.remove(&id)) {
                    log::error!("could not delete the history file of session '{}': {e}", printable(&id));
                }
            }
        }
    }
}
