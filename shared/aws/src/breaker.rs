//! The flood breaker's AWS adapters: the flood alarms' current states through CloudWatch
//! `DescribeAlarms`, and the guarded functions' reserved concurrency through the Lambda API.
use async_trait::async_trait;
use aws_sdk_cloudwatch::types::{AlarmType, MetricAlarm, StateValue};
use sondeo_domain::breaker::{
    AlarmState, BreakerError, FloodAlarm, FloodAlarms, GuardedFunctions, Reservation,
};

fn aws_error(action: String, e: impl std::error::Error) -> BreakerError {
    BreakerError::Aws {
        action,
        message: aws_sdk_lambda::error::DisplayErrorContext(e).to_string(),
    }
}

/// Guarded functions capped through the Lambda API.
pub struct LambdaFunctions {
    client: aws_sdk_lambda::Client,
}

impl LambdaFunctions {
    /// Functions capped with this client.
    pub fn new(client: aws_sdk_lambda::Client) -> Self {
        LambdaFunctions { client }
    }
}

#[async_trait]
impl GuardedFunctions for LambdaFunctions {
    async fn reservation(&self, function_arn: &str) -> Result<Reservation, BreakerError> {
        let out = self
            .client
            .get_function_concurrency()
            .function_name(function_arn)
            .send()
            .await
            .map_err(|e| aws_error(format!("reading {function_arn}'s reservation"), e))?;
        match out.reserved_concurrent_executions() {
            None => Ok(Reservation::Unreserved),
            Some(n) => u32::try_from(n)
                .map(Reservation::Reserved)
                .map_err(|_| BreakerError::Aws {
                    action: format!("reading {function_arn}'s reservation"),
                    message: format!("Lambda answered a reservation of {n}"),
                }),
        }
    }

    async fn set_reservation(
        &self,
        function_arn: &str,
        to: Reservation,
    ) -> Result<(), BreakerError> {
        let n = match to {
            Reservation::Unreserved => {
                self.client
                    .delete_function_concurrency()
                    .function_name(function_arn)
                    .send()
                    .await
                    .map_err(|e| aws_error(format!("removing {function_arn}'s reservation"), e))?;
                return Ok(());
            }
            Reservation::Reserved(n) => i32::try_from(n).map_err(|_| {
                BreakerError::Config(format!("reserved concurrency {n} is out of range"))
            })?,
        };
        match self
            .client
            .put_function_concurrency()
            .function_name(function_arn)
            .reserved_concurrent_executions(n)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // The account's unreserved concurrency would drop below Lambda's minimum: retrying
            // cannot help, and the account quota stays the ceiling.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_invalid_parameter_value_exception()) =>
            {
                Err(BreakerError::CannotReserve {
                    function: function_arn.to_string(),
                    message: aws_sdk_lambda::error::DisplayErrorContext(e).to_string(),
                })
            }
            Err(e) => Err(aws_error(format!("reserving {n} for {function_arn}"), e)),
        }
    }
}

/// Flood alarms read through CloudWatch.
pub struct CloudWatchAlarms {
    client: aws_sdk_cloudwatch::Client,
}

impl CloudWatchAlarms {
    /// Alarms read with this client.
    pub fn new(client: aws_sdk_cloudwatch::Client) -> Self {
        CloudWatchAlarms { client }
    }
}

/// A metric alarm as the breaker sees it: its name, state, and the `FunctionName` dimensions of
/// its metrics (metric math or a single metric); `None` without a name.
pub fn flood_alarm(alarm: &MetricAlarm) -> Option<FloodAlarm> {
    let name = alarm.alarm_name()?.to_string();
    let state = match alarm.state_value() {
        Some(StateValue::Alarm) => AlarmState::Alarm,
        Some(StateValue::Ok) => AlarmState::Ok,
        _ => AlarmState::InsufficientData,
    };
    let mut functions: Vec<String> = Vec::new();
    let nested = alarm
        .metrics()
        .iter()
        .filter_map(|m| m.metric_stat()?.metric())
        .flat_map(|m| m.dimensions());
    for d in alarm.dimensions().iter().chain(nested) {
        if let (Some("FunctionName"), Some(value)) = (d.name(), d.value()) {
            if !functions.iter().any(|f| f == value) {
                functions.push(value.to_string());
            }
        }
    }
    Some(FloodAlarm {
        name,
        state,
        functions,
    })
}

#[async_trait]
impl FloodAlarms for CloudWatchAlarms {
    async fn describe(&self, names: &[String]) -> Result<Vec<FloodAlarm>, BreakerError> {
        let mut alarms = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .describe_alarms()
                .set_alarm_names(Some(names.to_vec()))
                .alarm_types(AlarmType::MetricAlarm)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| aws_error(format!("describing the alarms {names:?}"), e))?;
            alarms.extend(out.metric_alarms().iter().filter_map(flood_alarm));
            match out.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_string()),
                _ => return Ok(alarms),
            }
        }
    }
}
