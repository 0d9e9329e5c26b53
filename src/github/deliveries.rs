//! The App's webhook deliveries (`/app/hook/deliveries`): list the recent
//! ones, newest first, with cursor paging until they are older than a
//! window, and ask GitHub to redeliver one attempt. Both are the App's own
//! routes, so they go out with the App JWT ([`Github::call_as_app`]), not an
//! installation token. The recovery loop that uses them is
//! `src/report/recovery.rs`.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::Value;

use super::{Call, Github, GithubError};

/// Deliveries asked for per page (GitHub's maximum).
pub const PER_PAGE: u32 = 100;
/// Most pages read per listing (10,000 deliveries).
pub const MAX_PAGES: u32 = 100;

/// One delivery attempt as GitHub lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The attempt's id (what a redelivery names).
    pub id: u64,
    /// The delivery's `X-GitHub-Delivery`, the same on every redelivery.
    pub guid: String,
    pub delivered_at: DateTime<Utc>,
    /// The HTTP status the receiver answered (0: no answer).
    pub status_code: u16,
    pub event: String,
    pub action: Option<String>,
    pub redelivery: bool,
}

impl Delivery {
    /// Reads one listed delivery; `None` when a field it needs is missing.
    pub fn from_json(v: &Value) -> Option<Delivery> {
        Some(Delivery {
            id: v["id"].as_u64()?,
            guid: v["guid"].as_str().filter(|g| !g.is_empty())?.to_string(),
            delivered_at: v["delivered_at"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())?
                .with_timezone(&Utc),
            status_code: v["status_code"]
                .as_u64()
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(0),
            event: v["event"].as_str().unwrap_or("").to_string(),
            action: v["action"].as_str().map(str::to_string),
            redelivery: v["redelivery"].as_bool().unwrap_or(false),
        })
    }

    /// Whether the receiver answered 2xx.
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status_code)
    }
}

/// The deliveries of one listing.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// Those within the window, newest first.
    pub deliveries: Vec<Delivery>,
    /// Pages read.
    pub pages: u32,
    /// Entries that could not be read (skipped).
    pub unreadable: usize,
    /// The window was not reached within [`MAX_PAGES`].
    pub truncated: bool,
}

/// Adds one page (newest first) to `listing`; `true` when the page reached
/// deliveries older than `since` (no need for the next one).
pub fn take_page(listing: &mut Listing, page: &Value, since: DateTime<Utc>) -> bool {
    let Some(items) = page.as_array() else {
        return true;
    };
    let mut older = false;
    for item in items {
        match Delivery::from_json(item) {
            Some(d) if d.delivered_at >= since => listing.deliveries.push(d),
            Some(_) => older = true,
            None => listing.unreadable += 1,
        }
    }
    older || items.is_empty()
}

impl Github {
    /// The App's deliveries since `since`, newest first (at most
    /// `max_pages` pages of [`PER_PAGE`]).
    pub async fn app_hook_deliveries(
        &self,
        since: DateTime<Utc>,
        max_pages: u32,
    ) -> Result<Listing, GithubError> {
        let mut listing = Listing::default();
        let mut path = format!("app/hook/deliveries?per_page={PER_PAGE}");
        loop {
            let page = self
                .call_as_app(Call {
                    op: "delivery_list",
                    method: Method::GET,
                    path,
                    body: None,
                    repo: "",
                    installation: None,
                })
                .await?;
            listing.pages += 1;
            let done = take_page(&mut listing, &page.body, since);
            match page.next {
                Some(next) if !done => {
                    if listing.pages >= max_pages {
                        listing.truncated = true;
                        return Ok(listing);
                    }
                    path = next;
                }
                _ => return Ok(listing),
            }
        }
    }

    /// Asks GitHub to redeliver attempt `id` (`202`).
    pub async fn redeliver_app_hook_delivery(&self, id: u64) -> Result<(), GithubError> {
        self.call_as_app(Call {
            op: "delivery_redeliver",
            method: Method::POST,
            path: format!("app/hook/deliveries/{id}/attempts"),
            body: None,
            repo: "",
            installation: None,
        })
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(id: u64, guid: &str, at: &str, status: u16) -> Value {
        json!({"id": id, "guid": guid, "delivered_at": at, "status_code": status,
               "event": "issues", "action": "labeled", "redelivery": false})
    }

    #[test]
    fn a_page_is_taken_until_deliveries_are_older_than_the_window() {
        let since = DateTime::parse_from_rfc3339("2026-01-02T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut listing = Listing::default();
        let first = json!([
            item(9, "a", "2026-01-03T00:00:00Z", 200),
            item(8, "b", "2026-01-02T00:00:00Z", 500),
            {"id": 7}
        ]);
        assert!(!take_page(&mut listing, &first, since), "go on");
        let second = json!([
            item(6, "c", "2026-01-02T10:00:00Z", 0),
            item(5, "d", "2026-01-01T23:59:59Z", 500),
        ]);
        assert!(take_page(&mut listing, &second, since), "stop: older");
        let guids: Vec<&str> = listing.deliveries.iter().map(|d| d.guid.as_str()).collect();
        assert_eq!(guids, ["a", "b", "c"]);
        assert_eq!(listing.unreadable, 1);
        assert!(listing.deliveries[0].succeeded());
        assert!(!listing.deliveries[1].succeeded());
        assert!(take_page(&mut Listing::default(), &json!([]), since));
        assert!(take_page(
            &mut Listing::default(),
            &json!({"message": "x"}),
            since
        ));
    }
}
