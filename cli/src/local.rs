//! The local stack: data directory, generated secrets, the embedded store, and the same
//! `CollectApp` and `AdminApp` the Lambda functions run.

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sondeo_domain::addresses::{AddressAllowlist, InvalidAddressBlock};
use sondeo_domain::alert_delivery::{CachedAlertRules, RULES_TTL};
use sondeo_domain::cache::CachedSurveys;
use sondeo_domain::keys::{ApiKeys, InvalidApiKeys};
use sondeo_domain::orders::Invitation;
use sondeo_domain::ports::{InvitationScheduler, StoreError};
use sondeo_domain::settings::{optional, parse_origins};
use sondeo_domain::survey::{JourneyStage, Locale, Survey, SurveyKind, Touchpoint};
use sondeo_domain::token::KeyringError;
use sondeo_domain::token::LinkKeyring;
use sondeo_embedded::outbox::Outbox;
use sondeo_embedded::EmbeddedStore;
use sondeo_http::admin::{AdminApp, AlertsConfig, OrdersConfig};
use sondeo_http::collect::CollectApp;
use sondeo_http::insights::ExportLimits;
use sondeo_http::outbound::{OutboundClient, OutboundError, ALLOW_ADDRESSES_VARIABLE};
use sondeo_http::webhooks::WebhookApp;
use sondeo_http::HttpService;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Id of the demo survey created on first start.
pub const DEMO_SURVEY: &str = "demo";

/// Why the local stack could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// Reading or writing the data directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The link-signing keys are unusable.
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    /// The API keys are unusable.
    #[error(transparent)]
    ApiKeys(#[from] InvalidApiKeys),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] sondeo_domain::ports::StoreError),
    /// The secrets file is not valid JSON.
    #[error("{0}")]
    Corrupt(String),
    /// `SONDEO_ALERT_ALLOW_ADDRESSES` does not parse.
    #[error("SONDEO_ALERT_ALLOW_ADDRESSES: {0}")]
    AlertAllowlist(#[from] InvalidAddressBlock),
    /// The outbound HTTPS client could not be built.
    #[error(transparent)]
    Outbound(#[from] OutboundError),
}

/// Secrets generated on first start and kept in `<data>/secrets.json` (mode 0600).
#[derive(Serialize, Deserialize)]
struct LocalSecrets {
    link_keys: String,
    api_key: String,
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Everything local mode runs: the store and both apps.
pub struct LocalStack {
    /// The embedded store (surveys, ledger, counters, queue).
    pub store: EmbeddedStore,
    /// The collect and API-key routes in one router, as the Lambda functions serve them.
    pub router: HttpService,
    /// The API key that works against this stack.
    pub api_key: String,
    /// The link-signing keys.
    pub keyring: LinkKeyring,
    /// The database file.
    pub db_path: PathBuf,
    /// Where invitation emails are written as `.eml` files (local mode sends no mail).
    pub outbox: Outbox,
    /// The base URL of the links in invitation emails.
    pub links_base: String,
    /// Each survey's alert rules, as the aggregator matches answers against them.
    pub alert_rules: Arc<CachedAlertRules>,
    /// Posts alerts (private addresses only when allowed).
    pub outbound: OutboundClient,
}

/// Where local invitation emails go, under the data directory.
pub const OUTBOX_DIR: &str = "outbox";
/// Links in local invitation emails point here unless a base URL is given.
pub const DEFAULT_LINKS_BASE: &str = "http://127.0.0.1:8787";

/// The file in the data directory where `serve` leaves the base URL it serves links at.
const BASE_URL_FILE: &str = "base-url";

/// Records where `serve` serves links (its address, or `--base-url`), so that local commands
/// mint links and webhook URLs that reach it.
pub fn remember_base_url(data_dir: &Path, base: &str) -> std::io::Result<()> {
    let path = data_dir.join(BASE_URL_FILE);
    let temp = data_dir.join(format!(".{BASE_URL_FILE}.{}", std::process::id()));
    std::fs::write(&temp, format!("{base}\n"))?;
    std::fs::rename(&temp, &path)
}

/// The base URL the last `serve` on this data directory recorded, if any.
pub fn remembered_base_url(data_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(data_dir.join(BASE_URL_FILE)).ok()?;
    let base = text.trim();
    (!base.is_empty() && base.len() <= 2048).then(|| base.to_string())
}

/// Creates the data directory readable by its owner only (it holds the keys, the webhook
/// secrets, the answers and the outbox); an existing one is left as it is.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Local mode's scheduler: nothing to arrange, the server's mail loop reads due invitations.
struct PollingScheduler;

#[async_trait::async_trait]
impl InvitationScheduler for PollingScheduler {
    async fn schedule(&self, _: &Invitation) -> Result<(), StoreError> {
        Ok(())
    }
}

impl LocalStack {
    /// Opens (creating on first use) the stack in `data_dir`; `base_url` is what links point at.
    pub async fn open(data_dir: &Path, base_url: Option<String>) -> Result<LocalStack, LocalError> {
        let allow =
            AddressAllowlist::parse(&optional(ALLOW_ADDRESSES_VARIABLE).unwrap_or_default())?;
        LocalStack::open_with(data_dir, base_url, allow).await
    }

    /// [`LocalStack::open`] with the private addresses alerts may call given, instead of read
    /// from `SONDEO_ALERT_ALLOW_ADDRESSES`.
    pub async fn open_with(
        data_dir: &Path,
        base_url: Option<String>,
        allow: AddressAllowlist,
    ) -> Result<LocalStack, LocalError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LocalError::Io { path, source }
        };
        create_private_dir(data_dir).map_err(io(data_dir))?;
        let secrets_path = data_dir.join("secrets.json");
        let secrets: LocalSecrets = match std::fs::read_to_string(&secrets_path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| LocalError::Corrupt(format!("{}: {e}", secrets_path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let s = LocalSecrets {
                    link_keys: format!("local1:{}", random_hex(32)),
                    api_key: format!("sk_local_{}", random_hex(16)),
                };
                write_private(
                    &secrets_path,
                    &serde_json::to_string_pretty(&s).unwrap_or_default(),
                )
                .map_err(io(&secrets_path))?;
                s
            }
            Err(e) => return Err(io(&secrets_path)(e)),
        };
        // The environment overrides the generated secrets, as on Lambda.
        let link_spec = optional("SONDEO_LINK_KEYS").unwrap_or(secrets.link_keys);
        let api_key_list = optional("SONDEO_API_KEYS").unwrap_or(secrets.api_key);
        let keyring = LinkKeyring::from_spec(&link_spec)?;
        let api_keys = ApiKeys::from_list(&api_key_list)?;
        let api_key = api_key_list
            .split(',')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        let db_path = data_dir.join("sondeo.db");
        let store = EmbeddedStore::open(&db_path)?;
        let shared: Arc<EmbeddedStore> = Arc::new(store.clone());
        let collect = CollectApp {
            surveys: Arc::new(CachedSurveys::new(shared.clone(), Duration::from_secs(5))),
            queue: shared.clone(),
            keyring: keyring.clone(),
            allowed_origins: optional("SONDEO_ALLOWED_ORIGINS")
                .map(|v| parse_origins(&v))
                .unwrap_or_default(),
            suppressions: shared.clone(),
        };
        let links_base = base_url
            .clone()
            .unwrap_or_else(|| DEFAULT_LINKS_BASE.to_string());
        let admin = AdminApp {
            surveys: shared.clone(),
            suppressions: shared.clone(),
            counters: shared.clone(),
            responses: shared.clone(),
            export_limits: ExportLimits::default(),
            api_keys,
            keyring: keyring.clone(),
            base_url: base_url.clone(),
            orders: OrdersConfig {
                connections: shared.clone(),
                invitations: shared.clone(),
                webhook_base_url: base_url,
            },
            alerts: Some(AlertsConfig {
                rules: shared.clone(),
                allow: allow.clone(),
            }),
            imports: Some(shared.clone()),
        };
        let alert_rules = Arc::new(CachedAlertRules::new(shared.clone(), RULES_TTL));
        let webhooks = WebhookApp {
            connections: shared.clone(),
            surveys: shared.clone(),
            invitations: shared.clone(),
            suppressions: shared,
            scheduler: Arc::new(PollingScheduler),
        };
        let outbox_dir = data_dir.join(OUTBOX_DIR);
        let outbox = Outbox::new(&outbox_dir).map_err(io(&outbox_dir))?;
        Ok(LocalStack {
            store,
            router: sondeo_http::local_router(collect, admin, webhooks),
            api_key,
            keyring,
            db_path,
            outbox,
            links_base,
            alert_rules,
            outbound: OutboundClient::new(allow)?,
        })
    }

    /// Creates the demo survey unless it exists; returns it.
    pub async fn ensure_demo_survey(&self) -> Result<Survey, LocalError> {
        use sondeo_domain::ports::SurveyStore;
        if let Some(s) = self.store.get_survey(DEMO_SURVEY).await? {
            return Ok(s);
        }
        let survey = Survey {
            id: DEMO_SURVEY.into(),
            kind: SurveyKind::Nps,
            question: "How likely are you to recommend us to a friend or colleague?".into(),
            follow_up: "What is the main reason for your score?".into(),
            locale: Locale::En,
            touchpoints: vec![
                Touchpoint {
                    slug: "signup".into(),
                    stage: Some(JourneyStage::Connection),
                },
                Touchpoint {
                    slug: "post-purchase".into(),
                    stage: Some(JourneyStage::Conversion),
                },
                Touchpoint {
                    slug: "support-chat".into(),
                    stage: Some(JourneyStage::Retention),
                },
            ],
            public_key: Some(format!("pk_demo_{}", random_hex(8))),
            brand: None,
            frequency_cap_days: None,
        };
        self.store.create_survey(&survey).await?;
        Ok(survey)
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(text.as_bytes())
}
