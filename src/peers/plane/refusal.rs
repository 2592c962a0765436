//! Why Plane refused a read (401, and 403 for two causes), for the
//! report and `check` to name the cause and the fix (docs/plane.md).

use crate::peers::http::{ErrorKind, PeerError};

/// Why Plane refused a read, told apart by status and body: Plane answers
/// 403 both for a bad key and for a project the key cannot see, with a
/// different body each (docs/plane.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 401: no key reached Plane.
    NoKey,
    /// 403 "Given API token is not valid": invalid, inactive or expired.
    KeyRejected,
    /// 403 "You do not have permission…": an unknown project or workspace,
    /// or a project the key's user is not a member of.
    ProjectHidden,
    /// 403 with another body (a proxy's, say): either of the two.
    Forbidden,
}

impl Refusal {
    pub fn of(e: &PeerError) -> Option<Refusal> {
        let ErrorKind::Status { code, snippet, .. } = &e.kind else {
            return None;
        };
        match code {
            401 => Some(Refusal::NoKey),
            403 if snippet.contains("API token is not valid") => Some(Refusal::KeyRejected),
            403 if snippet.contains("do not have permission") => Some(Refusal::ProjectHidden),
            403 => Some(Refusal::Forbidden),
            _ => None,
        }
    }

    /// The cause in a few words, with its status.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::NoKey => "HTTP 401: no API key sent",
            Refusal::KeyRejected => "HTTP 403: API key rejected",
            Refusal::ProjectHidden => "HTTP 403: project not visible to this key",
            Refusal::Forbidden => "HTTP 403: API key rejected or project not visible",
        }
    }

    /// Which cause is likely, and what to fix.
    pub fn hint(self) -> &'static str {
        match self {
            Refusal::NoKey => {
                "set [plane] api_key_file, the plane-api-key credential or RECONCILE_PLANE_API_KEY"
            }
            Refusal::KeyRejected => {
                "the key is invalid, inactive or expired: put a valid one in [plane] api_key_file \
                 (or the plane-api-key credential)"
            }
            Refusal::ProjectHidden => {
                "the key works, but not for this project: check its plane_project_id and \
                 [plane] workspace, and that the key's user is a member of the project"
            }
            Refusal::Forbidden => {
                "Plane says 403 for a bad key and for a project the key cannot see: when \
                 every project fails, replace the key; when only some do, check their \
                 plane_project_id, [plane] workspace and the key's membership"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Refusal;
    use crate::peers::http::{ErrorKind, Peer, PeerError};

    fn status(code: u16, snippet: &str) -> PeerError {
        PeerError {
            peer: Peer::Plane,
            endpoint: "GET http://plane/states/".into(),
            kind: ErrorKind::Status {
                code,
                snippet: snippet.into(),
                retry_after: None,
            },
        }
    }

    #[test]
    fn plane_refusals_are_told_apart_by_their_bodies() {
        let of = |code, body| Refusal::of(&status(code, body));
        assert_eq!(
            of(403, r#"{"detail": "Given API token is not valid"}"#),
            Some(Refusal::KeyRejected)
        );
        assert_eq!(
            of(
                403,
                r#"{"detail": "You do not have permission to perform this action."}"#
            ),
            Some(Refusal::ProjectHidden)
        );
        assert_eq!(of(403, "<html>denied</html>"), Some(Refusal::Forbidden));
        assert_eq!(of(401, ""), Some(Refusal::NoKey));
        assert_eq!(of(404, r#"{"error": "Page not found."}"#), None);
        assert_eq!(of(502, ""), None);
        let transport = PeerError {
            kind: ErrorKind::Transport("connection refused".into()),
            ..status(0, "")
        };
        assert_eq!(Refusal::of(&transport), None);
    }
}
