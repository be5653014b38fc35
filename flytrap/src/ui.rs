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
use flytrap_chain::Client;

use crate::report::Reader;

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
    /// The reader; locked only to refresh the index and plan a query.
    pub reader: tokio::sync::Mutex<Reader>,
    /// See [`UiConfig::explorer`].
    pub explorer: Option<String>,
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

/// Builds the index, binds, prints the page's URL on stdout and serves until killed.
pub async fn serve(client: Client, config: UiConfig) -> anyhow::Result<()> {
    let mut reader = Reader::open(client, config.index_dir.as_deref()).await?;
    reader.refresh().await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let local = listener.local_addr()?;
    let state = Arc::new(AppState {
        reader: tokio::sync::Mutex::new(reader),
        explorer: config.explorer.map(|e| e.trim_end_matches('/').to_string()),
    });
    // The tests and scripts read this line to find the port when --listen asks for port 0.
    println!("flytrap ui: http://{local}/");
    axum::serve(listener, router(state))
        .await
        .map_err(|e| anyhow::anyhow!("serving {local}: {e}"))
}
