//! EventBridge Scheduler: one one-time schedule per invitation, invoking the mail function at
//! the invitation's due time with the invitation's key as its input.

use crate::sdk_error::classify;
use async_trait::async_trait;
use aws_sdk_scheduler::error::ProvideErrorMetadata;
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, FlexibleTimeWindow, FlexibleTimeWindowMode, RetryPolicy, Target,
};
use sondeo_domain::orders::Invitation;
use sondeo_domain::ports::{InvitationScheduler, StoreError};
use sondeo_domain::time::{now_ms, Day};

/// The key of the schedule input naming the invitation to deliver.
const INPUT_KEY: &str = "sondeo_invitation";
/// The earliest a schedule is set to fire, from now: a due time sooner (or past) fires then.
const MIN_LEAD_MS: i64 = 60_000;
/// Attempts at invoking the mail function after a failed invocation (the service allows 185).
const MAX_RETRY_ATTEMPTS: i32 = 10;
/// How long the scheduler keeps retrying an invocation, in seconds (the service's maximum, 24 h).
const MAX_EVENT_AGE_SECS: i32 = 86_400;

/// Schedules invitations with EventBridge Scheduler, one schedule named after each.
#[derive(Clone, Debug)]
pub struct EventBridgeScheduler {
    client: aws_sdk_scheduler::Client,
    target_arn: String,
    role_arn: String,
    group: Option<String>,
}

impl EventBridgeScheduler {
    /// A scheduler invoking `target_arn` (the mail function) as `role_arn`, in schedule group
    /// `group` (the default group if none).
    pub fn new(
        client: aws_sdk_scheduler::Client,
        target_arn: impl Into<String>,
        role_arn: impl Into<String>,
        group: Option<String>,
    ) -> EventBridgeScheduler {
        EventBridgeScheduler {
            client,
            target_arn: target_arn.into(),
            role_arn: role_arn.into(),
            group,
        }
    }
}

/// The one-time schedule expression `at(yyyy-mm-ddThh:mm:ss)` (UTC) for an invitation due at
/// `due_at_ms`: that time rounded up to the second, or a minute from `now_ms` if it is sooner.
pub fn at_expression(due_at_ms: i64, now_ms: i64) -> String {
    let fire_ms = due_at_ms.max(now_ms.saturating_add(MIN_LEAD_MS));
    let secs = fire_ms.div_euclid(1000) + i64::from(fire_ms.rem_euclid(1000) != 0);
    let day = Day::from_unix_ms(secs.saturating_mul(1000));
    let of_day = secs.rem_euclid(86_400);
    format!(
        "at({day}T{:02}:{:02}:{:02})",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// The schedule input naming an invitation: `{"sondeo_invitation": {"connection", "order"}}`.
pub fn invitation_input(invitation: &Invitation) -> serde_json::Value {
    serde_json::json!({
        INPUT_KEY: {"connection": invitation.connection, "order": invitation.order}
    })
}

/// The connection and order a schedule input names, if it is one.
pub fn invitation_key(input: &serde_json::Value) -> Option<(String, String)> {
    let key = input.get(INPUT_KEY)?;
    let connection = key.get("connection")?.as_str()?;
    let order = key.get("order")?.as_str()?;
    Some((connection.to_string(), order.to_string()))
}

#[async_trait]
impl InvitationScheduler for EventBridgeScheduler {
    async fn schedule(&self, invitation: &Invitation) -> Result<(), StoreError> {
        let permanent = |e: aws_sdk_scheduler::error::BuildError| {
            StoreError::Permanent(format!("schedule request: {e}"))
        };
        let target = Target::builder()
            .arn(&self.target_arn)
            .role_arn(&self.role_arn)
            .input(invitation_input(invitation).to_string())
            .retry_policy(
                RetryPolicy::builder()
                    .maximum_retry_attempts(MAX_RETRY_ATTEMPTS)
                    .maximum_event_age_in_seconds(MAX_EVENT_AGE_SECS)
                    .build(),
            )
            .build()
            .map_err(permanent)?;
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(permanent)?;
        let res = self
            .client
            .create_schedule()
            .name(invitation.schedule_name())
            .set_group_name(self.group.clone())
            .schedule_expression(at_expression(invitation.due_at, now_ms()))
            .schedule_expression_timezone("UTC")
            .flexible_time_window(window)
            .action_after_completion(ActionAfterCompletion::Delete)
            .target(target)
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) => match e.code() {
                // A schedule of that name exists: the invitation is already on the clock.
                Some("ConflictException") => Ok(()),
                // Completed schedules delete themselves, so room comes back.
                Some("ServiceQuotaExceededException") => Err(StoreError::Transient(format!(
                    "schedule invitation: {}",
                    e.message().unwrap_or("service quota exceeded")
                ))),
                _ => Err(classify("schedule invitation", e)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-10-01T12:00:00Z in Unix milliseconds.
    const NOON: i64 = 1_790_856_000_000;

    #[test]
    fn the_at_expression_is_the_due_time_in_utc_rounded_up_to_the_second() {
        let now = NOON - 3_600_000;
        assert_eq!(at_expression(NOON, now), "at(2026-10-01T12:00:00)");
        assert_eq!(at_expression(NOON + 1, now), "at(2026-10-01T12:00:01)");
        assert_eq!(at_expression(NOON + 999, now), "at(2026-10-01T12:00:01)");
        assert_eq!(
            at_expression(NOON + 12 * 3_600_000 - 1_000, now),
            "at(2026-10-01T23:59:59)"
        );
        assert_eq!(
            at_expression(NOON + 12 * 3_600_000, now),
            "at(2026-10-02T00:00:00)"
        );
    }

    #[test]
    fn a_due_time_past_or_within_a_minute_fires_a_minute_from_now() {
        let due = NOON;
        for now in [NOON - 59_999, NOON, NOON + 86_400_000] {
            let expected = at_expression(now + 60_000, 0);
            assert_eq!(at_expression(due, now), expected, "now {now}");
        }
        assert_eq!(
            at_expression(NOON, NOON - 60_000),
            "at(2026-10-01T12:00:00)"
        );
        assert_eq!(
            at_expression(NOON - 30_000, NOON - 60_000),
            "at(2026-10-01T12:00:00)"
        );
    }

    #[test]
    fn the_input_names_the_invitation_and_reads_back() {
        let invitation = Invitation {
            connection: "tienda-sol".into(),
            order: "820982911946154508".into(),
            order_ref: "#1001".into(),
            email: "ana@example.com".into(),
            name: None,
            survey: "nps-2026".into(),
            touchpoint: "post-purchase".into(),
            created_at: 0,
            due_at: 0,
            status: sondeo_domain::orders::InvitationStatus::Scheduled,
            reason: None,
            attempts: 0,
            lease_until: 0,
            sent_at: None,
            message_id: None,
        };
        let input = invitation_input(&invitation);
        assert_eq!(
            input,
            serde_json::json!({"sondeo_invitation": {"connection": "tienda-sol", "order": "820982911946154508"}})
        );
        assert_eq!(
            invitation_key(&input),
            Some(("tienda-sol".into(), "820982911946154508".into()))
        );
        for other in [
            serde_json::json!({}),
            serde_json::json!({"sondeo_invitation": {"connection": "c"}}),
            serde_json::json!({"sondeo_invitation": {"connection": 1, "order": "o"}}),
            serde_json::json!("sondeo_invitation"),
        ] {
            assert_eq!(invitation_key(&other), None, "{other}");
        }
    }
}
