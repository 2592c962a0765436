//! Telegram Bot API: sendMessage, and getMe for `check`.
//! The bot token sits in the URL path; the HTTP layer redacts it.

use serde::Deserialize;

use super::http::{Client, PeerError};

/// Telegram's hard limit on one message.
pub const MAX_TEXT: usize = 4096;

#[derive(Debug, Clone)]
pub struct SendFailure {
    /// 400/401/403/404: retrying cannot help; the message is dropped.
    pub permanent: bool,
    pub retry_after: Option<u64>,
    pub error: PeerError,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    ok: bool,
    #[serde(default)]
    parameters: Option<Parameters>,
}

#[derive(Deserialize)]
struct Parameters {
    #[serde(default)]
    retry_after: Option<u64>,
}

/// `text` cut to Telegram's limit, with "…" when it was cut.
pub fn fit(text: &str) -> String {
    if text.chars().count() <= MAX_TEXT {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(MAX_TEXT - 1).collect();
    cut.push('…');
    cut
}

pub struct Telegram {
    http: Client,
    base: String,
    chat_id: String,
    thread: Option<i64>,
}

impl Telegram {
    pub fn new(cfg: &crate::config::Telegram, http: Client) -> Telegram {
        let token = cfg
            .bot_token
            .as_ref()
            .map(|t| t.expose().to_string())
            .unwrap_or_default();
        Telegram {
            http,
            base: format!("{}/bot{token}", cfg.api_url.trim_end_matches('/')),
            chat_id: cfg.chat_id.clone(),
            thread: cfg.message_thread_id,
        }
    }

    pub fn client(&self) -> &Client {
        &self.http
    }

    pub fn send(&self, text: &str) -> Result<(), SendFailure> {
        let url = format!("{}/sendMessage", self.base);
        // Telegram refuses longer texts for good (400): cut instead.
        let text = &fit(text);
        let mut body = serde_json::json!({
            "chat_id": self.chat_id,
            "text": text,
            "link_preview_options": {"is_disabled": true},
        });
        if let Some(t) = self.thread {
            body["message_thread_id"] = serde_json::Value::from(t);
        }
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let resp = self
            .http
            .send("POST", &url, &[], Some(&bytes))
            .map_err(|error| SendFailure {
                permanent: false,
                retry_after: None,
                error,
            })?;
        let envelope: Option<Envelope> = serde_json::from_slice(&resp.body).ok();
        if (200..300).contains(&resp.status) {
            return match envelope {
                Some(e) if e.ok => Ok(()),
                _ => Err(SendFailure {
                    permanent: false,
                    retry_after: None,
                    error: self
                        .http
                        .decode::<Envelope>("POST", &url, &resp.body)
                        .err()
                        .unwrap_or_else(|| self.http.status_error("POST", &url, &resp)),
                }),
            };
        }
        let retry_after = envelope
            .and_then(|e| e.parameters)
            .and_then(|p| p.retry_after)
            .or(resp.retry_after);
        Err(SendFailure {
            permanent: matches!(resp.status, 400 | 401 | 403 | 404),
            retry_after,
            error: self.http.status_error("POST", &url, &resp),
        })
    }

    /// Validates the token without sending anything.
    pub fn get_me(&self) -> Result<(), PeerError> {
        let url = format!("{}/getMe", self.base);
        let (e, _): (Envelope, _) = self.http.json("GET", &url, &[], None)?;
        if e.ok {
            Ok(())
        } else {
            Err(PeerError {
                peer: self.http.peer(),
                endpoint: self.http.redact(&format!("GET {url}")),
                kind: super::http::ErrorKind::Body("getMe answered ok: false".into()),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_cuts_long_texts_to_the_limit() {
        assert_eq!(fit("short"), "short");
        let long = "ж".repeat(5000);
        let cut = fit(&long);
        assert_eq!(cut.chars().count(), MAX_TEXT);
        assert!(cut.ends_with('…'));
        let exact = "x".repeat(MAX_TEXT);
        assert_eq!(fit(&exact), exact);
    }
}
