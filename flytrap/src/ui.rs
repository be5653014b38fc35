//! `flytrap ui`: the read-only web page over the contract's records (the paper's presentation
//! layer, §IV-E). One HTML page with its script and style embedded in the binary (no CDN, no
//! framework), over a JSON API ([`api`]) answered by [`crate::report`] — the same query code
//! as `flytrap audit`. No key is needed: everything is read with `eth_call` and `eth_getLogs`.

pub mod api;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use flytrap_chain::{B256, Client, TopicInfo};

use crate::report::{Progress, Reader};

const INDEX_HTML: &str = include_str!("ui/assets/index.html");
const APP_JS: &str = include_str!("ui/assets/app.js");
const STYLE_CSS: &str = include_str!("ui/assets/style.css");

/// What the server needs.
#[derive(Debug, Clone)]
pub struct UiConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Base URL of a block explorer for links (`{base}/tx/HASH`, `{base}/block/N`); `None`:
    /// links to the API's own `/api/tx/HASH` and `/api/block/N`.
    pub explorer: Option<String>,
    /// Directory of the block-by-time index (`None`: memory only).
    pub index_dir: Option<PathBuf>,
}

/// Shared by the handlers.
#[derive(Debug)]
pub struct AppState {
    /// The reader (it keeps every record in memory); locked to refresh and answer.
    pub reader: tokio::sync::Mutex<Reader>,
    /// See [`UiConfig::explorer`].
    pub explorer: Option<String>,
    /// How far the reader has caught up, readable without waiting for it (`/api/status`).
    pub progress: std::sync::Mutex<Progress>,
    /// Why catching up stopped, if it failed.
    pub failure: std::sync::Mutex<Option<String>>,
    /// Topic metadata read from the contract (countries, fees, sensitive flag), each with
    /// the topic's `changed_block` when it was read: stale once an `updated` change is seen.
    pub meta: tokio::sync::Mutex<std::collections::HashMap<B256, (u64, TopicInfo)>>,
}

impl AppState {
    /// A state over `reader`, which must keep its records ([`Reader::keep_records`]).
    pub fn new(reader: Reader, explorer: Option<String>) -> AppState {
        AppState {
            progress: std::sync::Mutex::new(reader.progress()),
            reader: tokio::sync::Mutex::new(reader),
            explorer,
            failure: std::sync::Mutex::new(None),
            meta: tokio::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Records the reader's progress for `/api/status`.
    pub fn set_progress(&self, p: Progress) {
        if let Ok(mut g) = self.progress.lock() {
            *g = p;
        }
    }

    /// The last recorded progress.
    pub fn progress(&self) -> Progress {
        self.progress.lock().map(|g| *g).unwrap_or_default()
    }
}

/// Catches the reader up with the chain one bounded step at a time, releasing it between
/// steps so that `/api/status` and the page stay responsive on a long chain. A node error
/// is retried after a pause (the page shows it).
pub async fn catch_up(state: Arc<AppState>) {
    loop {
        let step = {
            let mut r = state.reader.lock().await;
            r.step().await
        };
        match step {
            Ok(p) => {
                state.set_progress(p);
                if let Ok(mut f) = state.failure.lock() {
                    *f = None;
                }
                if p.ready {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!("indexing: {e}");
                if let Ok(mut f) = state.failure.lock() {
                    *f = Some(e.to_string());
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

/// The router: the page, its assets and the API.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { page(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/app.js",
            get(|| async { page(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/style.css",
            get(|| async { page(STYLE_CSS, "text/css; charset=utf-8") }),
        )
        .nest("/api", api::routes())
        .fallback(api::not_found)
        .with_state(state)
}

fn page(body: &'static str, kind: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

/// Binds, prints the page's URL on stdout, catches the index up in the background (the
/// page shows its progress) and serves until killed.
pub async fn serve(client: Client, config: UiConfig) -> anyhow::Result<()> {
    let mut reader = Reader::open(client, config.index_dir.as_deref()).await?;
    reader.keep_records();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let local = listener.local_addr()?;
    let state = Arc::new(AppState::new(
        reader,
        config.explorer.map(|e| e.trim_end_matches('/').to_string()),
    ));
    tokio::spawn(catch_up(state.clone()));
    // The tests and scripts read this line to find the port when --listen asks for port 0.
    println!("flytrap ui: http://{local}/");
    axum::serve(listener, router(state))
        .await
        .map_err(|e| anyhow::anyhow!("serving {local}: {e}"))
}
