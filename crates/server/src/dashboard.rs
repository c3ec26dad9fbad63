//! The dashboard's pages: one HTML shell for every page path (`/`,
//! `/studies/{study}`, `/studies/{study}/trials/{number}`, `/compare`) and its
//! script, charts and style, all compiled into the binary (no CDN: it works
//! offline and behind a firewall). The script reads the JSON API; the pages
//! themselves hold no data, so they need no token.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Router, routing};

use crate::api::AppState;

/// An embedded file: its name under `/assets/`, type and text.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    text: &'static str,
}

const INDEX: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    text: include_str!("../assets/index.html"),
};

const ASSETS: [Asset; 3] = [
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        text: include_str!("../assets/app.js"),
    },
    Asset {
        name: "chart.js",
        content_type: "text/javascript; charset=utf-8",
        text: include_str!("../assets/chart.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        text: include_str!("../assets/style.css"),
    },
];

/// The page routes and `/assets/{file}`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", routing::get(page))
        .route("/studies/{study}", routing::get(page))
        .route("/studies/{study}/trials/{number}", routing::get(page))
        .route("/compare", routing::get(page))
        .route("/assets/{file}", routing::get(asset))
}

/// A strong validator for `text`: its FNV-1a hash (the assets change only with
/// the binary).
fn etag(text: &str) -> String {
    let hash = text
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("\"{hash:016x}\"")
}

/// `asset`, or 304 when the browser's copy is current.
fn send(asset: &Asset, headers: &HeaderMap) -> Response {
    let tag = etag(asset.text);
    let fresh =
        headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(tag.as_str());
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.text).into_response()
    };
    let out = response.headers_mut();
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(tag) = HeaderValue::from_str(&tag) {
        out.insert(header::ETAG, tag);
    }
    response
}

async fn page(headers: HeaderMap) -> Response {
    send(&INDEX, &headers)
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|it| it.name == file) {
        Some(asset) => send(asset, &headers),
        None => crate::error::ApiError::not_found(format!("no asset `{file}`")).into_response(),
    }
}
