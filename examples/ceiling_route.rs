//! The ceiling of the webhook ingest bench: the least any verified receiver
//! on this stack (actix-web, one worker) must do for a delivery — read the
//! body up to the service's limit, check its HMAC-SHA256 with the crates
//! the service uses, answer 202. Nothing else: no parsing, no logging, no
//! metrics. `benches/run.sh` compares the service with it.
//!
//! Run: `cargo run --release --example ceiling_route` (listens on
//! 127.0.0.1:8089, one worker; secret from GITHUB_WEBHOOK_SECRET).

/// The service binary's allocator, so the comparison is of the code alone.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The service's default `GITHUB_MAX_BODY_BYTES`.
const LIMIT: usize = 25 * 1024 * 1024;

async fn webhook(req: HttpRequest, body: web::Bytes, secret: web::Data<Vec<u8>>) -> HttpResponse {
    let mut expected = [0u8; 32];
    let signed = req
        .headers()
        .get("x-hub-signature-256")
        .and_then(|v| v.as_bytes().strip_prefix(b"sha256="))
        .is_some_and(|h| hex::decode_to_slice(h, &mut expected).is_ok());
    if !signed {
        return HttpResponse::Unauthorized().finish();
    }
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&secret) else {
        return HttpResponse::InternalServerError().finish();
    };
    mac.update(&body);
    if mac.verify_slice(&expected).is_err() {
        return HttpResponse::Unauthorized().finish();
    }
    HttpResponse::Accepted().finish()
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let secret = std::env::var("GITHUB_WEBHOOK_SECRET").unwrap_or_else(|_| "bench-secret".into());
    let secret = web::Data::new(secret.into_bytes());
    let addr = std::env::var("CEILING_LISTEN").unwrap_or_else(|_| "127.0.0.1:8089".into());
    println!("ceiling route listening on {addr}");
    HttpServer::new(move || {
        App::new()
            .app_data(secret.clone())
            .app_data(web::PayloadConfig::new(LIMIT))
            .route("/webhook/github", web::post().to(webhook))
    })
    .workers(1)
    .bind(addr)?
    .run()
    .await
}
