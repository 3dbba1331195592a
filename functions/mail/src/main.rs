//! `mail`: the composition root (see the crate documentation).

use lambda_runtime::{Error, LambdaEvent};
use mail::config::MailConfig;
use mail::handler::{handle, MailDeps};
use serde_json::Value;
use sondeo_aws::dynamo::DynamoStore;
use sondeo_aws::secrets;
use sondeo_aws::ses::SesMailer;
use sondeo_domain::invite::Courier;

#[tokio::main]
async fn main() -> Result<(), Error> {
    sondeo_aws::lambda::init_tracing();
    let config = MailConfig::from_env()?;
    let sdk = sondeo_aws::lambda::sdk_config(config.roots).await;
    let keyring = secrets::link_keyring(&sdk, &config.link_keys).await?;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), config.table);
    let mailer = SesMailer::new(aws_sdk_sesv2::Client::new(&sdk), config.configuration_set);
    let deps = MailDeps {
        courier: Courier {
            invitations: &store,
            suppressions: &store,
            surveys: &store,
            connections: &store,
            mailer: &mailer,
        },
        suppressions: &store,
        keyring: &keyring,
        base_url: &config.base_url,
    };
    let deps = &deps;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<Value>| handle(event.payload, deps),
    ))
    .await
}
