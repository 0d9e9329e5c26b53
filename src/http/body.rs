//! Reading request bodies without letting promises or slow senders hold
//! the service's memory.
//!
//! The rule for bodies whose sender is not yet authenticated (webhooks are
//! signed over the body, so the body must be read first):
//!
//! - **Bytes buffered, not bytes declared, are charged.** `Content-Length`
//!   only refuses an oversized body early (413); the buffer starts small
//!   and grows in doubling steps, and each step's capacity is charged to
//!   the budget before it is allocated. A chunked body is also charged
//!   [`CHUNK_OVERHEAD`] bytes per chunk against its size limit, so a
//!   stream of one-byte chunks reaches the limit 65 times sooner.
//! - **Two pools.** Bodies declared at most [`SMALL_BODY`] (every ordinary
//!   webhook delivery) draw first from a reserve of [`SMALL_POOL`] that
//!   larger and chunked bodies never touch, then from the shared
//!   [`LARGE_POOL`]; so senders holding big bodies cannot stop ordinary
//!   deliveries.
//! - **A share per client address** (an IPv6 client's /64): at most
//!   [`PER_ADDRESS_BODIES`] bodies in flight and [`PER_ADDRESS_BYTES`]
//!   buffered (429 beyond). The address is the peer's, or the `X-Forwarded-For` client's when the peer is one of
//!   `TRUSTED_PROXIES`.
//! - **A minimum transfer rate**: after [`GRACE`], a body must have arrived
//!   at [`MIN_RATE`] bytes a second on average since its head (408
//!   otherwise), and all of it within [`BODY_READ_DEADLINE`]. A held
//!   connection costs its sender time, not us: one that sends only headers
//!   is cut after [`GRACE`].
//!
//! The charge is returned when the caller has authenticated the body
//! ([`BodyPermit::release`]) or drops it.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest};
use dashmap::DashMap;
use futures::StreamExt;

use super::error::RouteError;

/// Bytes every unauthenticated body may buffer together (the shared pool).
pub const LARGE_POOL: usize = 64 * 1024 * 1024;
/// Bytes reserved for bodies declared at most [`SMALL_BODY`].
pub const SMALL_POOL: usize = 16 * 1024 * 1024;
/// Largest declared body that may draw on [`SMALL_POOL`].
pub const SMALL_BODY: usize = 1024 * 1024;
/// Unauthenticated bodies one client address may have in flight.
pub const PER_ADDRESS_BODIES: usize = 16;
/// Bytes one client address may have buffered (room for one 25 MiB GitHub
/// delivery and then some).
pub const PER_ADDRESS_BYTES: usize = 32 * 1024 * 1024;
/// How long a client may take to send a whole body (GitHub itself gives a
/// delivery 10 s).
pub const BODY_READ_DEADLINE: Duration = Duration::from_secs(10);
/// Before this, a body may arrive at any pace.
pub const GRACE: Duration = Duration::from_secs(2);
/// Bytes a second a body must average after [`GRACE`] (a 25 MiB delivery
/// needs 2.5 MB/s to fit GitHub's own 10 s; this is 1/256 of that).
pub const MIN_RATE: u64 = 10 * 1024;
/// What each chunk of a chunked body counts for against its size limit.
pub const CHUNK_OVERHEAD: usize = 64;
/// The first allocation for a body.
const INITIAL: usize = 16 * 1024;

/// The unauthenticated-body budget of one server (shared by its workers).
#[derive(Debug, Default)]
pub struct BodyBudget {
    large: AtomicUsize,
    small: AtomicUsize,
    addresses: DashMap<IpAddr, Share>,
}

/// What one client address holds.
#[derive(Debug, Default, Clone, Copy)]
struct Share {
    bodies: usize,
    bytes: usize,
}

/// Adds `n` to `counter` if the result stays within `cap`.
fn take(counter: &AtomicUsize, n: usize, cap: usize) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
            v.checked_add(n).filter(|t| *t <= cap)
        })
        .is_ok()
}

impl BodyBudget {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Bytes buffered now by unauthenticated bodies (both pools).
    pub fn in_use(&self) -> usize {
        self.large.load(Ordering::Acquire) + self.small.load(Ordering::Acquire)
    }

    /// Starts a body from `addr`: one of its in-flight slots.
    fn begin(self: &Arc<Self>, addr: IpAddr, small: bool) -> Result<BodyPermit, RouteError> {
        let addr = share_key(addr);
        let mut share = self.addresses.entry(addr).or_default();
        if share.bodies >= PER_ADDRESS_BODIES {
            return Err(per_address());
        }
        share.bodies += 1;
        Ok(BodyPermit {
            budget: Some(self.clone()),
            addr,
            small_eligible: small,
            large: 0,
            small: 0,
        })
    }
}

/// The address a share belongs to: an IPv4 address, or the /64 network of
/// an IPv6 one (one host commonly holds a whole /64, so counting its
/// addresses one by one would give it millions of shares).
fn share_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
            }
        },
    }
}

fn per_address() -> RouteError {
    RouteError::RateLimited {
        scope: "client address (unauthenticated request bodies in flight)",
        retry_after: Duration::from_secs(1),
    }
}

/// A body's share of the [`BodyBudget`], returned on [`release`](Self::release) or drop.
#[derive(Debug)]
pub struct BodyPermit {
    budget: Option<Arc<BodyBudget>>,
    addr: IpAddr,
    small_eligible: bool,
    large: usize,
    small: usize,
}

impl BodyPermit {
    /// Charges `n` more bytes: to the small reserve first when eligible,
    /// else the shared pool; and to the address's share.
    fn charge(&mut self, n: usize) -> Result<(), RouteError> {
        let Some(budget) = &self.budget else {
            return Ok(());
        };
        {
            let mut share = budget.addresses.entry(self.addr).or_default();
            if share.bytes + n > PER_ADDRESS_BYTES {
                return Err(per_address());
            }
            share.bytes += n;
        }
        if self.small_eligible && take(&budget.small, n, SMALL_POOL) {
            self.small += n;
            return Ok(());
        }
        if take(&budget.large, n, LARGE_POOL) {
            self.large += n;
            return Ok(());
        }
        if let Some(mut share) = budget.addresses.get_mut(&self.addr) {
            share.bytes -= n;
        }
        Err(RouteError::Unavailable(
            "the unauthenticated body budget is in use".into(),
        ))
    }

    /// Returns the share: the body is authenticated (or no longer held).
    pub fn release(mut self) {
        self.give_back();
    }

    fn give_back(&mut self) {
        let Some(budget) = self.budget.take() else {
            return;
        };
        budget.large.fetch_sub(self.large, Ordering::AcqRel);
        budget.small.fetch_sub(self.small, Ordering::AcqRel);
        let empty = match budget.addresses.get_mut(&self.addr) {
            Some(mut share) => {
                share.bodies = share.bodies.saturating_sub(1);
                share.bytes = share.bytes.saturating_sub(self.large + self.small);
                share.bodies == 0
            }
            None => false,
        };
        if empty {
            budget.addresses.remove_if(&self.addr, |_, s| s.bodies == 0);
        }
    }
}

impl Drop for BodyPermit {
    fn drop(&mut self) {
        self.give_back();
    }
}

/// Reads a request body up to `limit` bytes (413 beyond), checking
/// `Content-Length` first so an oversized body is refused before reading,
/// at no less than [`MIN_RATE`] after [`GRACE`] and within
/// [`BODY_READ_DEADLINE`] (408 otherwise).
pub async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, RouteError> {
    let declared = declared_length(req, limit)?;
    read(payload, limit, declared, None).await
}

/// [`read_body`] for a body whose sender is not yet authenticated, from
/// client address `addr`: its buffer is charged to `budget` (the module's
/// rule) until the returned permit is released or dropped.
pub async fn read_unauthenticated_body(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    budget: &Arc<BodyBudget>,
    addr: IpAddr,
) -> Result<(web::Bytes, BodyPermit), RouteError> {
    let declared = declared_length(req, limit)?;
    let small = declared.is_some_and(|len| len <= SMALL_BODY);
    let mut permit = budget.begin(addr, small)?;
    let body = read(payload, limit, declared, Some(&mut permit)).await?;
    Ok((body, permit))
}

/// The `Content-Length` the request declares (none: chunked); over `limit`
/// it is refused at once (413), before a byte is read.
fn declared_length(req: &HttpRequest, limit: usize) -> Result<Option<usize>, RouteError> {
    let Some(v) = req.headers().get("content-length") else {
        return Ok(None);
    };
    // The dispatcher has refused a malformed one already; a length beyond
    // usize is over every limit.
    let len = v
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    if len > limit {
        return Err(RouteError::TooLarge(limit));
    }
    Ok(Some(len))
}

/// Reads the body (`declared` bytes, or chunked when `None`) up to `limit`.
async fn read(
    mut payload: web::Payload,
    limit: usize,
    declared: Option<usize>,
    mut permit: Option<&mut BodyPermit>,
) -> Result<web::Bytes, RouteError> {
    let chunked = declared.is_none();
    let ceiling = declared.unwrap_or(limit).min(limit);
    let started = Instant::now();
    let mut buf: Vec<u8> = Vec::new();
    let mut charged = 0usize;
    let mut chunks = 0usize;
    loop {
        let deadline = read_deadline(started, buf.len());
        let next = match tokio::time::timeout_at(deadline.into(), payload.next()).await {
            Ok(next) => next,
            Err(_) => {
                return Err(RouteError::Timeout(
                    if deadline >= started + BODY_READ_DEADLINE {
                        format!(
                            "the request body did not arrive within {} s",
                            BODY_READ_DEADLINE.as_secs()
                        )
                    } else {
                        format!(
                        "the request body arrived slower than {MIN_RATE} bytes a second (after the first {} s)",
                        GRACE.as_secs()
                    )
                    },
                ))
            }
        };
        let Some(chunk) = next else { break };
        let chunk =
            chunk.map_err(|e| RouteError::BadRequest(format!("reading the body failed: {e}")))?;
        chunks += 1;
        let need = buf.len() + chunk.len();
        let accounted = need + if chunked { chunks * CHUNK_OVERHEAD } else { 0 };
        if need > limit || accounted > limit {
            return Err(RouteError::TooLarge(limit));
        }
        if need > buf.capacity() {
            let grown = need
                .max(buf.capacity() * 2)
                .max(INITIAL)
                .min(ceiling.max(need));
            if let Some(p) = permit.as_deref_mut() {
                p.charge(grown - charged)?;
                charged = grown;
            }
            buf.reserve_exact(grown - buf.len());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(web::Bytes::from(buf))
}

/// When the next piece of a body must have arrived: by the whole-body
/// deadline, and while the average since `started` stays at [`MIN_RATE`].
fn read_deadline(started: Instant, received: usize) -> Instant {
    let micros = u64::try_from(received)
        .unwrap_or(u64::MAX)
        .saturating_mul(1_000_000)
        / MIN_RATE;
    let paid_for = Duration::from_micros(micros);
    started + BODY_READ_DEADLINE.min(GRACE.max(paid_for))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn the_small_reserve_stays_for_small_bodies_when_large_ones_fill_the_pool() {
        let budget = BodyBudget::new();
        let mut holders = Vec::new();
        for i in 0..2 {
            let mut p = budget.begin(addr(i), false).expect("slot");
            p.charge(PER_ADDRESS_BYTES - 1024).expect("large pool");
            holders.push(p);
        }
        assert!(budget.large.load(Ordering::Acquire) <= LARGE_POOL);
        let mut big = budget.begin(addr(9), false).expect("slot");
        assert!(matches!(
            big.charge(4 * 1024 * 1024),
            Err(RouteError::Unavailable(_))
        ));
        let mut small = budget.begin(addr(9), true).expect("slot");
        small.charge(SMALL_BODY).expect("the reserve");
        drop(holders);
        drop(small);
        drop(big);
        assert_eq!(budget.in_use(), 0);
        assert!(budget.addresses.is_empty());
    }

    #[test]
    fn one_address_gets_a_bounded_share_of_bodies_and_bytes() {
        let budget = BodyBudget::new();
        let mut held: Vec<_> = (0..PER_ADDRESS_BODIES)
            .map(|_| budget.begin(addr(1), true).expect("slot"))
            .collect();
        assert!(matches!(
            budget.begin(addr(1), true),
            Err(RouteError::RateLimited { .. })
        ));
        assert!(budget.begin(addr(2), true).is_ok());
        held[0].charge(PER_ADDRESS_BYTES).expect("its share");
        assert!(matches!(
            held[1].charge(1),
            Err(RouteError::RateLimited { .. })
        ));
        held.remove(0).release();
        held[1].charge(1024).expect("returned share");
    }

    #[test]
    fn an_ipv6_client_shares_with_its_slash_64_and_a_mapped_ipv4_is_its_ipv4() {
        let budget = BodyBudget::new();
        let host = |last: u16| IpAddr::from([0x2001, 0xdb8, 1, 2, 0, 0, 0, last]);
        let _held: Vec<_> = (0..PER_ADDRESS_BODIES)
            .map(|i| budget.begin(host(i as u16), true).expect("slot"))
            .collect();
        assert!(matches!(
            budget.begin(host(999), true),
            Err(RouteError::RateLimited { .. })
        ));
        assert!(budget
            .begin(IpAddr::from([0x2001, 0xdb8, 1, 3, 0, 0, 0, 1]), true)
            .is_ok());
        let mapped: IpAddr = "::ffff:192.0.2.9".parse().expect("ip");
        assert_eq!(share_key(mapped), IpAddr::from([192, 0, 2, 9]));
    }

    #[test]
    fn the_deadline_follows_the_minimum_rate_after_the_grace() {
        let t = Instant::now();
        assert_eq!(read_deadline(t, 0), t + GRACE);
        assert_eq!(
            read_deadline(t, MIN_RATE as usize * 5),
            t + Duration::from_secs(5)
        );
        assert_eq!(read_deadline(t, usize::MAX / 2), t + BODY_READ_DEADLINE);
    }
}
