//! Unblock announcements: the message text, and delivery of the outbox to
//! Telegram (docs/decisions.md, "Announcements, de-dup and delivery"): at least once, a digest when many are due.

use time::OffsetDateTime;

use crate::peers::telegram::{MAX_TEXT, Telegram};
use crate::store::{OutboxMessage, Sidecar, SidecarError};
use crate::tick::outcome::Notification;

/// `{link}` of the templates: the work item's URL when the unit has a work
/// item id and a link template; without a template the work item id itself
/// (DESIGN is silent there: an id people know beats an issue uuid); else
/// the plain key.
pub fn link(link_template: Option<&str>, work_item_id: Option<&str>, key: &str) -> String {
    match (link_template, work_item_id) {
        (Some(t), Some(w)) => t.replace("{work_item_id}", w),
        (None, Some(w)) => w.to_string(),
        _ => key.to_string(),
    }
}

pub fn unblock_text(template: &str, link: &str, stage: &str) -> String {
    template.replace("{link}", link).replace("{stage}", stage)
}

pub fn cycle_text(template: &str, cycle: &str) -> String {
    template.replace("{cycle}", cycle)
}

/// One message for many: a header, one line each, cut to Telegram's limit
/// with "… and N more".
pub fn digest(lines: &[String]) -> String {
    let header = format!("🔧 reconciler: {} notifications", lines.len());
    let mut text = header;
    for (i, line) in lines.iter().enumerate() {
        let rest = lines.len() - i;
        let tail = format!("\n… and {rest} more");
        let candidate_len = text.chars().count() + 1 + line.chars().count();
        let tail_room = if rest > 1 {
            format!("\n… and {} more", rest - 1).chars().count()
        } else {
            0
        };
        if candidate_len + tail_room > MAX_TEXT {
            text.push_str(&tail);
            return text;
        }
        text.push('\n');
        text.push_str(line);
    }
    text
}

/// What delivery did to the outbox this tick.
#[derive(Debug, Default)]
pub struct Delivery {
    /// Outbox ids delivered as their own message.
    pub sent: Vec<i64>,
    /// Outbox ids delivered inside a digest.
    pub digested: Vec<i64>,
    pub dropped: Vec<i64>,
}

impl Delivery {
    /// What became of one outbox row in this delivery, if it was due.
    pub fn status(&self, id: i64) -> Option<Notification> {
        if self.sent.contains(&id) {
            Some(Notification::Sent)
        } else if self.digested.contains(&id) {
            Some(Notification::Digest)
        } else if self.dropped.contains(&id) {
            Some(Notification::Dropped)
        } else {
            None
        }
    }
}

/// Delivers what is due. A message is marked sent only after Telegram said
/// ok; transient failures stay queued for a later tick.
pub fn deliver(
    store: &mut Sidecar,
    telegram: &Telegram,
    digest_over: usize,
    now: OffsetDateTime,
) -> Result<Delivery, SidecarError> {
    let due: Vec<OutboxMessage> = store.due_messages(now)?;
    let mut out = Delivery::default();
    if due.len() > digest_over {
        let lines: Vec<String> = due.iter().map(|m| m.digest_line.clone()).collect();
        let text = digest(&lines);
        let ids: Vec<i64> = due.iter().map(|m| m.id).collect();
        match telegram.send(&text) {
            Ok(()) => {
                store.mark_sent(&ids, now)?;
                out.digested = ids;
            }
            Err(f) => {
                log::warn!(
                    "telegram: digest of {} messages not delivered: {}",
                    ids.len(),
                    f.error
                );
                for id in ids {
                    fail(store, &mut out, id, &f, now)?;
                }
            }
        }
    } else {
        for m in &due {
            // Each call is clipped to the time left; once none is left the
            // rest stay queued, untried (not a failed attempt).
            if telegram.client().time_left().is_some_and(|t| t.is_zero()) {
                log::warn!("deadline reached; the remaining messages stay queued");
                break;
            }
            match telegram.send(&m.text) {
                Ok(()) => {
                    store.mark_sent(&[m.id], now)?;
                    out.sent.push(m.id);
                }
                Err(f) => {
                    log::warn!("telegram: message {} not delivered: {}", m.id, f.error);
                    let rate_limited = f.retry_after.is_some();
                    fail(store, &mut out, m.id, &f, now)?;
                    // Telegram asked us to wait: the rest waits too.
                    if rate_limited {
                        break;
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The longest `last_error` kept in the outbox.
const MAX_ERROR: usize = 500;

fn fail(
    store: &mut Sidecar,
    out: &mut Delivery,
    id: i64,
    f: &crate::peers::telegram::SendFailure,
    now: OffsetDateTime,
) -> Result<(), SidecarError> {
    // Bounded before it reaches the sidecar: a peer's body is not ours to
    // store whole.
    let error: String = f.error.to_string().chars().take(MAX_ERROR).collect();
    if f.permanent {
        log::error!("telegram refused message {id}; dropping it: {error}");
        store.mark_dropped(id, &error, now)?;
        out.dropped.push(id);
    } else {
        let retry_at = f
            .retry_after
            .map(|s| now + time::Duration::seconds(s.min(86_400) as i64));
        if store.mark_failed(id, &error, retry_at, now)? {
            log::error!("telegram: message {id} failed too often; dropping it: {error}");
            out.dropped.push(id);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_uses_template_only_with_a_work_item() {
        let t = Some("https://plane.example.com/acme/browse/{work_item_id}/");
        assert_eq!(
            link(t, Some("ET-7"), "ET-7"),
            "https://plane.example.com/acme/browse/ET-7/"
        );
        assert_eq!(link(t, None, "42"), "42");
        assert_eq!(link(None, Some("ET-7"), "ET-7"), "ET-7");
        assert_eq!(link(None, Some("ET-10"), "issue-uuid"), "ET-10");
        assert_eq!(link(None, None, "issue-uuid"), "issue-uuid");
    }

    #[test]
    fn unblock_text_fills_the_seed_template() {
        let t = "🔧 reconciler: {link} {stage} разблокирована (потерян webhook)";
        assert_eq!(
            unblock_text(t, "ET-7", "testing"),
            "🔧 reconciler: ET-7 testing разблокирована (потерян webhook)"
        );
    }

    #[test]
    fn digest_lists_every_line_when_it_fits() {
        let lines: Vec<String> = (1..=6).map(|i| format!("line {i}")).collect();
        let d = digest(&lines);
        assert!(d.starts_with("🔧 reconciler: 6 notifications"));
        assert_eq!(d.lines().count(), 7);
    }

    #[test]
    fn digest_is_cut_at_the_telegram_limit_with_a_count() {
        let lines: Vec<String> = (0..500)
            .map(|i| format!("{i:03} {}", "x".repeat(60)))
            .collect();
        let d = digest(&lines);
        assert!(d.chars().count() <= MAX_TEXT, "{}", d.chars().count());
        let last = d.lines().last().unwrap();
        assert!(
            last.starts_with("… and ") && last.ends_with(" more"),
            "{last}"
        );
        let shown = d.lines().count() - 2;
        let more: usize = last
            .trim_start_matches("… and ")
            .trim_end_matches(" more")
            .parse()
            .unwrap();
        assert_eq!(shown + more, 500);
    }
}
