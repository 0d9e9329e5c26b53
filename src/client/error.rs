//! Errors of the API client and the exit codes the CLI maps them to. Each
//! error renders as one line that says what went wrong and what to do; none
//! ever contains the bearer token.

use std::fmt;
use std::process::ExitCode;

use serde_json::Value;

/// Exit codes scripts can rely on.
pub mod exit {
    /// Success (for `--wait`: the Job succeeded).
    pub const OK: u8 = 0;
    /// `--wait`: the Job failed, timed out or was cancelled.
    pub const JOB_FAILED: u8 = 1;
    /// Usage error (bad flags; clap uses 2 as well).
    pub const USAGE: u8 = 2;
    /// The server could not be reached.
    pub const UNREACHABLE: u8 = 3;
    /// The server refused the token (401/403), or no token was given.
    pub const AUTH: u8 = 4;
    /// No such Job (404).
    pub const NOT_FOUND: u8 = 5;
    /// The server rejected the request (400/422).
    pub const INVALID: u8 = 6;
    /// A server-side problem (5xx, 429, or an answer the CLI cannot read).
    pub const SERVER: u8 = 7;
    /// `--wait` gave up (`--wait-timeout`); the Job goes on.
    pub const WAIT_TIMEOUT: u8 = 8;
}

/// The exit-code table shown in `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  ok (with --wait: the Job succeeded)
  1  with --wait: the Job failed, timed out or was cancelled
  2  usage error
  3  server unreachable
  4  authentication failed (401/403, or no token)
  5  not found (404)
  6  invalid request (400/422; each field error is printed)
  7  server-side problem or unavailable (5xx/429)
  8  with --wait: gave up waiting (--wait-timeout); the Job goes on";

/// One field the server named in a 422 answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

/// What can go wrong talking to the orchestrator API.
#[derive(Debug)]
pub enum ClientError {
    /// Bad client-side input (e.g. a malformed `--server`).
    Usage(String),
    /// No connection (refused, DNS, TLS, timeout).
    Unreachable { server: String, reason: String },
    /// No token configured.
    NoToken,
    /// 401 or 403.
    Auth { status: u16, message: String },
    /// 404 for a named Job.
    NoSuchJob { name: String },
    /// 404 for the log of a Job that has no pod (yet).
    NoLogs { name: String, message: String },
    /// 404 for anything else (the server's message).
    NotFound { message: String },
    /// 400 or 422, with the fields the server named.
    Invalid {
        status: u16,
        message: String,
        fields: Vec<FieldProblem>,
    },
    /// 5xx, 429, or an answer that is not what the API documents.
    Server { status: u16, message: String },
    /// `--wait` ran out of time.
    WaitTimeout {
        name: String,
        state: String,
        waited_secs: u64,
    },
}

impl ClientError {
    /// The process exit code of this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Usage(_) => exit::USAGE,
            ClientError::Unreachable { .. } => exit::UNREACHABLE,
            ClientError::NoToken | ClientError::Auth { .. } => exit::AUTH,
            ClientError::NoSuchJob { .. }
            | ClientError::NoLogs { .. }
            | ClientError::NotFound { .. } => exit::NOT_FOUND,
            ClientError::Invalid { .. } => exit::INVALID,
            ClientError::Server { .. } => exit::SERVER,
            ClientError::WaitTimeout { .. } => exit::WAIT_TIMEOUT,
        }
    }

    /// True if retrying later may help (unavailable, rate limited,
    /// unreachable).
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Unreachable { .. } => true,
            ClientError::Server { status, .. } => matches!(status, 429 | 502 | 503 | 504),
            _ => false,
        }
    }

    /// Prints the error on stderr (one line, plus one line per bad field)
    /// and returns the exit code.
    pub fn report(&self) -> ExitCode {
        eprintln!("Error: {self}");
        if let ClientError::Invalid { fields, .. } = self {
            for f in fields {
                eprintln!("  {}: {}", f.field, f.message);
            }
        }
        ExitCode::from(self.exit_code())
    }

    /// Classifies an error answer (status and body) of the API.
    pub fn from_answer(status: u16, body: &str, job: Option<&str>) -> ClientError {
        let json: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let message = json["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| first_line(body));
        match status {
            401 | 403 => ClientError::Auth { status, message },
            404 => match job {
                // "no such route" means the server is not (this version of)
                // orchestrator; anything else about a named Job is "no job".
                Some(name) if message.contains("no pod") => ClientError::NoLogs {
                    name: name.to_string(),
                    message,
                },
                Some(name) if json["message"] != "no such route" => ClientError::NoSuchJob {
                    name: name.to_string(),
                },
                _ => ClientError::NotFound { message },
            },
            400 | 413 | 422 => {
                let fields = json["fields"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|f| FieldProblem {
                                field: f["field"].as_str().unwrap_or("?").to_string(),
                                message: f["message"].as_str().unwrap_or("").to_string(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                ClientError::Invalid {
                    status,
                    message,
                    fields,
                }
            }
            _ => ClientError::Server { status, message },
        }
    }
}

/// The first line of `text`, at most 200 characters.
fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    line.chars().take(200).collect()
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Usage(m) => write!(f, "{m}"),
            ClientError::Unreachable { server, reason } => write!(
                f,
                "cannot reach {server} ({reason}); is orchestrator serve running? Set --server or ORCHESTRATOR_URL."
            ),
            ClientError::NoToken => write!(
                f,
                "no API token; set --token or ORCHESTRATOR_TOKEN (a `cli=TOKEN` entry of the server's API_TOKENS), or run from the directory where `serve --embedded-cluster` wrote orchestrator-dev-api-token."
            ),
            ClientError::Auth { status: 403, message } => write!(
                f,
                "the server refused the token for this request (403: {message}); use a cli token in --token or ORCHESTRATOR_TOKEN."
            ),
            ClientError::Auth { status, .. } => write!(
                f,
                "the server refused the token ({status}); check --token or ORCHESTRATOR_TOKEN."
            ),
            ClientError::NoSuchJob { name } => write!(
                f,
                "no job named {name:?}; list jobs with \"orchestrator jobs list\"."
            ),
            ClientError::NoLogs { name, message } => write!(
                f,
                "{message}; try again once it runs, or wait for it with \"orchestrator jobs logs {name} -f\"."
            ),
            ClientError::NotFound { message } => write!(
                f,
                "not found (404: {message}); check --server points at orchestrator and the name is right."
            ),
            ClientError::Invalid { status, message, fields } if fields.is_empty() => {
                write!(f, "the server rejected the request ({status}): {message}")
            }
            ClientError::Invalid { status, fields, .. } => write!(
                f,
                "the server rejected the request ({status}): {} invalid field(s):",
                fields.len()
            ),
            ClientError::Server { status, message } => write!(
                f,
                "the server could not handle the request ({status}: {message}); try again later."
            ),
            ClientError::WaitTimeout { name, state, waited_secs } => write!(
                f,
                "gave up waiting for job {name:?} after {waited_secs}s (still {state}); it goes on: follow it with \"orchestrator jobs get {name}\" or raise --wait-timeout."
            ),
        }
    }
}

impl std::error::Error for ClientError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_map_to_exit_codes() {
        let e = ClientError::from_answer(
            401,
            r#"{"status":"error","error":"unauthorized","message":"unknown bearer token"}"#,
            None,
        );
        assert_eq!(e.exit_code(), exit::AUTH);
        assert!(e.to_string().contains("check --token"));
        let e = ClientError::from_answer(
            404,
            r#"{"status":"error","error":"not_found","message":"no job named \"x\""}"#,
            Some("x"),
        );
        assert_eq!(e.exit_code(), exit::NOT_FOUND);
        assert!(e.to_string().contains("orchestrator jobs list"), "{e}");
        let e = ClientError::from_answer(
            422,
            r#"{"status":"error","error":"invalid","message":"m","fields":[{"field":"title","message":"must not be empty"}]}"#,
            None,
        );
        assert_eq!(e.exit_code(), exit::INVALID);
        let ClientError::Invalid { fields, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(fields[0].field, "title");
        let e = ClientError::from_answer(503, "<html>busy</html>", None);
        assert_eq!(e.exit_code(), exit::SERVER);
        assert!(e.is_transient());
        assert_eq!(
            ClientError::from_answer(429, "", None).exit_code(),
            exit::SERVER
        );
    }

    #[test]
    fn a_route_404_is_not_reported_as_a_missing_job() {
        let e = ClientError::from_answer(404, r#"{"message":"no such route"}"#, Some("x"));
        assert!(matches!(e, ClientError::NotFound { .. }), "{e:?}");
    }
}
