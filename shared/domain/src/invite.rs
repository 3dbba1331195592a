//! From webhook order to sent email, over the ports: admitting an order (one invitation per
//! connection and order, skipped for unsubscribed addresses and within the survey's frequency
//! cap, scheduled otherwise) and delivering a due invitation (claimed under a lease, sent once,
//! retried on a temporary failure, marked failed after the last attempt). The webhook and mail
//! functions and local mode all run these same steps.

use crate::orders::{
    cap_ms, contact_id, new_invitation, Admission, Connection, Invitation, InvitationStatus,
    OrderEvent, MAX_SEND_ATTEMPTS, SEND_LEASE_MS,
};
use crate::ports::{
    ConnectionStore, InvitationScheduler, InvitationStore, MailError, Mailer, StoreError,
    SuppressionList, SurveyStore,
};
use crate::survey::Survey;

/// How early a scheduled invitation may be delivered (clock skew between the scheduler and
/// the sender; schedules fire at or after their time).
pub const EARLY_SLACK_MS: i64 = 5_000;
/// Wait before another attempt after a temporary mail failure, times the attempt number.
pub const RETRY_BACKOFF_MS: i64 = 60_000;

/// What admitting an order needs.
pub struct OrderDesk<'a> {
    /// Where invitations are kept.
    pub invitations: &'a dyn InvitationStore,
    /// Addresses that unsubscribed.
    pub suppressions: &'a dyn SuppressionList,
    /// What puts invitations on the clock.
    pub scheduler: &'a dyn InvitationScheduler,
}

impl OrderDesk<'_> {
    /// Admits an order announced through `connection`: at most one invitation per order, however
    /// many deliveries or topics bring it, and a retried delivery finishes what an interrupted
    /// one started.
    pub async fn admit(
        &self,
        connection: &Connection,
        survey: &Survey,
        order: &OrderEvent,
        now_ms: i64,
    ) -> Result<Admission, StoreError> {
        let invitation = match new_invitation(connection, order, now_ms) {
            Ok(invitation) => invitation,
            Err(why) => return Ok(Admission::NoEmail(why)),
        };
        let created = self.invitations.create_invitation(&invitation).await?;
        let current = if created {
            invitation
        } else {
            self.invitations
                .get_invitation(&connection.id, &order.order_id)
                .await?
                .ok_or_else(|| {
                    StoreError::Transient("the order's invitation was removed meanwhile".into())
                })?
        };
        // Only a still-scheduled invitation has steps left; they are idempotent, so a repeated
        // delivery that finds one (its first delivery may have stopped halfway) takes them again.
        let settled = if current.status == InvitationStatus::Scheduled {
            self.settle(survey, current).await?
        } else {
            current
        };
        Ok(match (created, settled.status) {
            (false, _) => Admission::Duplicate(settled),
            (true, InvitationStatus::Skipped) => Admission::Skipped(settled),
            (true, _) => Admission::Scheduled(settled),
        })
    }

    /// Skips the invitation for an unsubscribed address or one invited within the cap;
    /// schedules it otherwise.
    async fn settle(
        &self,
        survey: &Survey,
        invitation: Invitation,
    ) -> Result<Invitation, StoreError> {
        let contact = contact_id(&invitation.email);
        if is_suppressed(self.suppressions, &contact).await? {
            return skip(
                self.invitations,
                invitation,
                "unsubscribed: the address is on the suppression list".into(),
            )
            .await;
        }
        let claimed = self
            .invitations
            .claim_contact(
                &survey.id,
                &contact,
                &invitation.schedule_name(),
                invitation.created_at,
                cap_ms(survey),
            )
            .await?;
        if !claimed {
            let days = survey.frequency_cap_days.unwrap_or(0);
            return skip(
                self.invitations,
                invitation,
                format!("frequency cap: invited to this survey within the last {days} days"),
            )
            .await;
        }
        self.scheduler.schedule(&invitation).await?;
        Ok(invitation)
    }
}

/// Whether `contact` (in `contact_id` form) is on the suppression list.
async fn is_suppressed(list: &dyn SuppressionList, contact: &str) -> Result<bool, StoreError> {
    let found = list.suppressed_among(&[contact.to_string()]).await?;
    Ok(!found.is_empty())
}

/// Marks an invitation skipped (unless it moved on meanwhile: then it is returned as it is).
async fn skip(
    store: &dyn InvitationStore,
    invitation: Invitation,
    reason: String,
) -> Result<Invitation, StoreError> {
    let next = Invitation {
        status: InvitationStatus::Skipped,
        reason: Some(reason),
        ..invitation.clone()
    };
    settle_replace(store, &invitation, next).await
}

/// Replaces `seen` with `next`, or returns the invitation as stored when it changed meanwhile.
async fn settle_replace(
    store: &dyn InvitationStore,
    seen: &Invitation,
    next: Invitation,
) -> Result<Invitation, StoreError> {
    if store.replace_invitation(seen, &next).await? {
        return Ok(next);
    }
    store
        .get_invitation(&seen.connection, &seen.order)
        .await?
        .ok_or_else(|| StoreError::Transient("the invitation was removed meanwhile".into()))
}

/// Builds an invitation's MIME message from its survey and connection.
pub type Compose<'c> =
    dyn Fn(&Survey, &Connection, &Invitation) -> Result<Vec<u8>, String> + Sync + 'c;

/// What delivering an invitation needs.
pub struct Courier<'a> {
    /// Where invitations are kept.
    pub invitations: &'a dyn InvitationStore,
    /// Addresses that unsubscribed.
    pub suppressions: &'a dyn SuppressionList,
    /// Survey definitions.
    pub surveys: &'a dyn SurveyStore,
    /// Store connections (the sender and the store's name).
    pub connections: &'a dyn ConnectionStore,
    /// What sends the email.
    pub mailer: &'a dyn Mailer,
}

/// What a delivery attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The email was sent.
    Sent(Invitation),
    /// Not sent on purpose (unsubscribed since the order).
    Skipped(Invitation),
    /// Not sent, for good (the reason says why).
    Failed(Invitation),
    /// Not sent this time: a temporary failure; the invitation is due again later.
    Retry(Invitation),
    /// Nothing to do: already sent, skipped or failed, or another sender holds it.
    Settled(Invitation),
    /// Not due yet.
    NotDue(Invitation),
    /// No such invitation.
    Missing,
}

impl Courier<'_> {
    /// Delivers the invitation of `connection`'s `order` if it is due and nobody else is
    /// delivering it; `compose` builds its MIME message.
    pub async fn deliver(
        &self,
        connection: &str,
        order: &str,
        now_ms: i64,
        compose: &Compose<'_>,
    ) -> Result<Delivery, StoreError> {
        let Some(seen) = self.invitations.get_invitation(connection, order).await? else {
            return Ok(Delivery::Missing);
        };
        match seen.status {
            InvitationStatus::Scheduled if seen.due_at > now_ms + EARLY_SLACK_MS => {
                return Ok(Delivery::NotDue(seen))
            }
            InvitationStatus::Scheduled => {}
            InvitationStatus::Sending if seen.lease_until <= now_ms => {}
            _ => return Ok(Delivery::Settled(seen)),
        }
        // Claimed under a lease: a second sender (a retried schedule, local mode's next tick)
        // finds it sending and leaves it.
        let claimed = Invitation {
            status: InvitationStatus::Sending,
            attempts: seen.attempts + 1,
            lease_until: now_ms + SEND_LEASE_MS,
            ..seen.clone()
        };
        if !self.invitations.replace_invitation(&seen, &claimed).await? {
            let now = self.invitations.get_invitation(connection, order).await?;
            return Ok(now.map_or(Delivery::Missing, Delivery::Settled));
        }
        if is_suppressed(self.suppressions, &contact_id(&claimed.email)).await? {
            let next = Invitation {
                status: InvitationStatus::Skipped,
                reason: Some("unsubscribed after the order: not sent".into()),
                lease_until: 0,
                ..claimed.clone()
            };
            return settle_replace(self.invitations, &claimed, next)
                .await
                .map(Delivery::Skipped);
        }
        let context = match self.context(&claimed).await? {
            Ok(found) => found,
            Err(why) => return self.fail(&claimed, why).await,
        };
        let (survey, conn) = context;
        let mime = match compose(&survey, &conn, &claimed) {
            Ok(mime) => mime,
            Err(why) => {
                return self
                    .fail(&claimed, format!("the email could not be built: {why}"))
                    .await
            }
        };
        match self
            .mailer
            .send_raw(&conn.sender, &claimed.email, &mime)
            .await
        {
            Ok(message_id) => {
                let next = Invitation {
                    status: InvitationStatus::Sent,
                    reason: None,
                    lease_until: 0,
                    sent_at: Some(now_ms),
                    message_id: Some(message_id),
                    ..claimed.clone()
                };
                settle_replace(self.invitations, &claimed, next)
                    .await
                    .map(Delivery::Sent)
            }
            Err(MailError::Transient(why)) if claimed.attempts < MAX_SEND_ATTEMPTS => {
                let next = Invitation {
                    status: InvitationStatus::Scheduled,
                    reason: Some(format!("attempt {} failed: {why}", claimed.attempts)),
                    lease_until: 0,
                    due_at: now_ms + RETRY_BACKOFF_MS * i64::from(claimed.attempts),
                    ..claimed.clone()
                };
                settle_replace(self.invitations, &claimed, next)
                    .await
                    .map(Delivery::Retry)
            }
            Err(e) => self.fail(&claimed, e.to_string()).await,
        }
    }

    /// The invitation's survey and connection, or why it cannot be sent.
    async fn context(
        &self,
        invitation: &Invitation,
    ) -> Result<Result<(Survey, Connection), String>, StoreError> {
        let Some(connection) = self
            .connections
            .get_connection_settings(&invitation.connection)
            .await?
        else {
            return Ok(Err(format!(
                "the connection '{}' was deleted",
                invitation.connection
            )));
        };
        let Some(survey) = self.surveys.get_survey(&invitation.survey).await? else {
            return Ok(Err(format!(
                "the survey '{}' was deleted",
                invitation.survey
            )));
        };
        Ok(Ok((survey, connection)))
    }

    /// Marks a claimed invitation failed for good, and gives back its frequency-cap claim: it
    /// sent nothing, so the customer's next order may invite them.
    async fn fail(&self, claimed: &Invitation, why: String) -> Result<Delivery, StoreError> {
        let next = Invitation {
            status: InvitationStatus::Failed,
            reason: Some(why),
            lease_until: 0,
            ..claimed.clone()
        };
        let failed = settle_replace(self.invitations, claimed, next).await?;
        self.invitations
            .release_contact(
                &claimed.survey,
                &contact_id(&claimed.email),
                &claimed.schedule_name(),
            )
            .await?;
        Ok(Delivery::Failed(failed))
    }
}
