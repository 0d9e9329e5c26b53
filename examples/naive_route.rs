//! Baseline for the webhook load bench: the naive route a receiver might
//! write first — HMAC-SHA256 check of the body, then `serde_json::Value`
//! parse of the whole payload, then a JSON answer. Nothing else.
//!
//! Run: `cargo run --release --example naive_route` (listens on
//! 127.0.0.1:8090, one worker; secret from GITHUB_WEBHOOK_SECRET). See
//! `benches/load.sh`, which loads this and `orchestrator serve` the same way.

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use hmac::{Hmac, Mac};
use sha2::Sha256;

async fn webhook(req: HttpRequest, body: web::Bytes, secret: web::Data<Vec<u8>>) -> HttpResponse {
    let sig = req
        .headers()
        .get("x-hub-signature-256")
        .and_then(|v| v.as_bytes().strip_prefix(b"sha256="))
        .and_then(|h| hex::decode(h).ok());
    let Some(sig) = sig else {
        return HttpResponse::Unauthorized().json(serde_json::json!({"status": "error"}));
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&secret) else {
        return HttpResponse::InternalServerError().finish();
    };
    mac.update(&body);
    if mac.verify_slice(&sig).is_err() {
        return HttpResponse::Unauthorized().json(serde_json::json!({"status": "error"}));
    }
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(v) => HttpResponse::Accepted().json(serde_json::json!({
            "status": "ignored",
            "action": v.get("action").and_then(|a| a.as_str()).unwrap_or(""),
        })),
        Err(_) => HttpResponse::BadRequest().json(serde_json::json!({"status": "error"})),
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let secret = std::env::var("GITHUB_WEBHOOK_SECRET").unwrap_or_else(|_| "bench-secret".into());
    let secret = web::Data::new(secret.into_bytes());
    let addr = std::env::var("NAIVE_LISTEN").unwrap_or_else(|_| "127.0.0.1:8090".into());
    println!("naive route listening on {addr}");
    HttpServer::new(move || {
        App::new()
            .app_data(secret.clone())
            .app_data(web::PayloadConfig::new(25 * 1024 * 1024))
            .route("/webhook/github", web::post().to(webhook))
    })
    .workers(1)
    .bind(addr)?
    .run()
    .await
}
