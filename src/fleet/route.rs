//! [`Route`]: the server one request goes to, the order the others are tried in ([`order`]),
//! and the failover before the first chunk.

use super::standing::InFlight;
use super::Fleet;
use crate::ollama::{ChatRequest, ChatStream, Client, OllamaError, StallLimit};
use std::sync::{Arc, Mutex};

/// What is known of one server when a request is routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct View {
    /// Not marked down.
    pub up: bool,
    /// Requests of the node on it now.
    pub in_flight: usize,
    /// Sessions it answered last.
    pub sessions: usize,
    /// Whether it has the model (`None`: not known).
    pub has_model: Option<bool>,
}

/// The order in which the servers are tried for a request whose session was answered last by
/// `affinity`: that server first while it is up and may have the model; then the other up
/// servers, those known to have the model before those not known, each by fewest requests in
/// flight, fewest sessions, position; then the down servers in their order. Servers known to
/// lack the model are left out, unless every server is: then all are tried, and say so.
pub(super) fn order(views: &[View], affinity: Option<usize>) -> Vec<usize> {
    let usable = |i: &usize| views[*i].has_model != Some(false);
    let mut up: Vec<usize> = (0..views.len()).filter(|i| views[*i].up).filter(usable).collect();
    up.sort_by_key(|i| {
        let v = views[*i];
        (Some(*i) != affinity, v.has_model != Some(true), v.in_flight, v.sessions, *i)
    });
    up.extend((0..views.len()).filter(|i| !views[*i].up).filter(usable));
    if up.is_empty() {
        return (0..views.len()).collect();
    }
    up
}

/// True for a failure after which the request goes to the next server: nothing came from this
/// one (refused, timed out before its first line, closed before any line, busy or failing with
/// a 429 / 5xx answer, or it does not have the model).
pub(super) fn moves_on(e: &OllamaError) -> bool {
    match e {
        OllamaError::Connect { .. } | OllamaError::ConnectTimeout { .. } | OllamaError::Http(_) => true,
        OllamaError::Stalled { limit: StallLimit::Load, .. } => true,
        OllamaError::Truncated { chunks, .. } => *chunks == 0,
        OllamaError::Status { code, .. } => *code == 429 || (500..=599).contains(code) || e.is_model_not_found(),
        _ => false,
    }
}

/// One request's way through the fleet: created when the request starts, dropped when it ends
/// (its server counts it in flight meanwhile).
pub struct Route {
    fleet: Arc<Fleet>,
    session: String,
    model: String,
    /// The server of the latest attempt (before any: the one it would go to), with its count.
    at: Mutex<(usize, Option<InFlight>)>,
    /// The server whose stream was taken.
    answered: Mutex<Option<usize>>,
}

impl Route {
    pub(super) fn new(fleet: Arc<Fleet>, session: &str, model: &str) -> Route {
        let first = fleet.order_for(session, model).first().copied().unwrap_or(0);
        Route {
            fleet,
            session: session.to_string(),
            model: model.to_string(),
            at: Mutex::new((first, None)),
            answered: Mutex::new(None),
        }
    }

    /// The client of the server this request is on (before streaming: the one it goes to first),
    /// for the lookups it needs (`/api/show`).
    pub fn client(&self) -> Client {
        self.fleet.servers[self.lock_at().0].client.clone()
    }

    /// Looks the model up in the lists of the up servers where it is not known (several servers
    /// only, [`Fleet::learn_models`]), and points [`Route::client`] at the server the request will
    /// go to first with what is known then: what is prepared for it (the context window) is that
    /// server's.
    pub async fn settle(&self) {
        let fleet = &self.fleet;
        if fleet.servers.len() > 1 {
            fleet.learn_models(&self.model).await;
            if let Some(first) = fleet.order_for(&self.session, &self.model).first() {
                self.lock_at().0 = *first;
            }
        }
    }

    /// The URL (password as `***`) of the server that answered, else of the last one tried.
    pub fn server(&self) -> String {
        let index = self.answered.lock().unwrap_or_else(|e| e.into_inner()).unwrap_or_else(|| self.lock_at().0);
        self.fleet.servers[index].shown().to_string()
    }

    /// Opens the answer's stream on the first server of [`order`] that gives a first chunk; a
    /// failure of [`moves_on`]'s kinds marks that server down (when there are several) and moves
    /// the request to the next one at once. The stream returned has its first chunk still to
    /// give. The last failure is returned when no server answered.
    pub async fn chat_stream(&self, chat: &ChatRequest) -> Result<ChatStream, OllamaError> {
        let fleet = &self.fleet;
        let several = fleet.servers.len() > 1;
        self.settle().await;
        let order = fleet.order_for(&self.session, &self.model);
        let mut last = OllamaError::Config("no server to send the request to".into());
        for (n, index) in order.iter().copied().enumerate() {
            let server = &fleet.servers[index];
            *self.lock_at() = (index, Some(server.enter()));
            match first_chunk(&server.client, chat).await {
                Ok(stream) => {
                    server.mark_up();
                    fleet.answered(&self.session, index);
                    *self.answered.lock().unwrap_or_else(|e| e.into_inner()) = Some(index);
                    return Ok(stream);
                }
                Err(e) if moves_on(&e) => {
                    if e.is_model_not_found() {
                        server.learn(&self.model, false);
                    } else if several || Fleet::cut_off(&e) {
                        // one server is marked down only when it cannot be reached: its return is
                        // then noticed (and the warm-up loads the model there again)
                        server.mark_down(&e, !several);
                    }
                    if let Some(next) = order.get(n + 1) {
                        log::warn!("session '{}': {} failed before answering ({e}); the request moves to {}",
                            self.session, server.shown(), fleet.servers[*next].shown());
                    }
                    last = e;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    fn lock_at(&self) -> std::sync::MutexGuard<'_, (usize, Option<InFlight>)> {
        self.at.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The chat stream of `client` once its first chunk arrived (handed back to it).
async fn first_chunk(client: &Client, chat: &ChatRequest) -> Result<ChatStream, OllamaError> {
    let mut stream = client.chat_stream(chat).await?;
    match stream.next_chunk().await {
        Some(Ok(chunk)) => {
            stream.put_back(chunk);
            Ok(stream)
        }
        Some(Err(e)) => Err(e),
        None => Err(OllamaError::Truncated { chunks: 0, detail: "the stream ended before its first chunk".into() }),
    }
}

impl Fleet {
    /// [`order`] for `session` and `model` with what is known now.
    pub(super) fn order_for(&self, session: &str, model: &str) -> Vec<usize> {
        let sessions = self.sessions_per_server();
        let views: Vec<View> = self.servers.iter().map(|s| View {
            up: s.is_up(),
            in_flight: s.in_flight(),
            sessions: sessions.get(s.index()).copied().unwrap_or(0),
            has_model: s.has_model(model),
        }).collect();
        order(&views, self.affinity(session))
    }
}
