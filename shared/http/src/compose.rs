//! The invitation email of one order, ready to send: the respondent's signed link (its send is
//! the order), rendered by `mail` and wrapped as one MIME message.

use crate::mail::{render_invitation, to_mime};
use sondeo_domain::orders::{sender_address, Connection, Invitation};
use sondeo_domain::survey::Survey;
use sondeo_domain::token::{LinkClaims, LinkKeyring, LinkScope};

/// Days an invitation's links stay valid after it is sent.
pub const INVITATION_LINK_DAYS: i64 = 30;

/// Builds the MIME message of `invitation`, its links under `base_url`, at `now_secs`.
pub fn compose_invitation(
    keyring: &LinkKeyring,
    base_url: &str,
    survey: &Survey,
    connection: &Connection,
    invitation: &Invitation,
    now_secs: i64,
) -> Result<Vec<u8>, String> {
    let token = keyring
        .sign_scoped(
            &LinkClaims {
                survey: survey.id.clone(),
                touchpoint: invitation.touchpoint.clone(),
                respondent: invitation.email.clone(),
                issued_at: now_secs,
                expires_at: now_secs + INVITATION_LINK_DAYS * 86_400,
            },
            &LinkScope {
                send: invitation.send(),
                campaign: false,
            },
        )
        .map_err(|e| e.to_string())?;
    let base = base_url.trim_end_matches('/');
    let email = render_invitation(survey, invitation, connection, base, &token);
    let domain = sender_address(&connection.sender)
        .and_then(|a| a.rsplit_once('@'))
        .map_or("sondeo.invalid", |(_, d)| d);
    let message_id = format!(
        "{}.{}@{domain}",
        invitation.schedule_name(),
        invitation.attempts
    );
    Ok(to_mime(
        &connection.sender,
        &invitation.email,
        &email,
        now_secs,
        &message_id,
    ))
}
