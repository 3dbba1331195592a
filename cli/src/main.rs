//! `sondeo`: run the product locally, manage surveys, mint links and print reports, locally or
//! against a deployed stack (`--api`).

use clap::{Args, Parser, Subcommand};
use http::Method;
use sondeo_domain::survey::{JourneyStage, Locale, Survey, SurveyKind, Touchpoint};
use sondeo_local::client::{self, ApiClient};
use sondeo_local::local::{LocalStack, DEMO_SURVEY};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// Where `sondeo serve` listens by default: the base of links minted by local commands.
const LOCAL_BASE_URL: &str = "http://127.0.0.1:8787";

#[derive(Parser)]
#[command(
    name = "sondeo",
    version,
    about = "Survey collection and NPS: local mode and command-line client"
)]
struct Cli {
    /// Local mode data folder (database and generated secrets).
    #[arg(
        long,
        global = true,
        env = "SONDEO_DATA_DIR",
        default_value = ".sondeo"
    )]
    data_dir: PathBuf,
    /// Base URL of a deployed stack; without it, commands work on the local data folder.
    #[arg(long, global = true, env = "SONDEO_API_URL")]
    api: Option<String>,
    /// API key of the deployed stack.
    #[arg(long, global = true, env = "SONDEO_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start every HTTP route and the aggregator on this machine, with embedded storage.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8787")]
        addr: SocketAddr,
        /// Public base URL that links point at (default: the listen address).
        #[arg(long, env = "SONDEO_BASE_URL")]
        base_url: Option<String>,
    },
    /// Create, list and show surveys.
    #[command(subcommand)]
    Survey(SurveyCommand),
    /// Mint the one-click links of a respondent, or a campaign's links (`--campaign`).
    Link {
        #[arg(long)]
        survey: String,
        #[arg(long)]
        touchpoint: String,
        /// The respondent (customer id, order id or email address); not with --campaign.
        #[arg(
            long,
            required_unless_present = "campaign",
            conflicts_with = "campaign"
        )]
        respondent: Option<String>,
        /// The send the links belong to (a campaign wave, an order, a ticket): the same
        /// respondent counts once per send.
        #[arg(long)]
        send: Option<String>,
        /// One link for everyone, the respondent id taken from the URL's rid= (anyone holding
        /// it can answer for any id: such answers are counted apart from signed ones).
        #[arg(long)]
        campaign: bool,
        /// The email tool's merge tag for the recipient's id in a campaign link, e.g. '*|EMAIL|*'.
        #[arg(long, requires = "campaign")]
        rid: Option<String>,
        /// Days until the links expire.
        #[arg(long, default_value_t = 30)]
        days: i64,
    },
    /// Mint links for a recipients CSV (mail merge): writes the rows with their links.
    Links(LinksArgs),
    /// Import past answers from a CSV or JSON Lines export (Delighted, Formbricks, Typeform or
    /// any tool), each with its original answer time.
    Import(ImportArgs),
    /// Print the HTML block (or its plain-text alternative) to paste into an email template.
    Snippet(SnippetArgs),
    /// The suppression list: respondents who unsubscribed get no links and no surveys.
    #[command(subcommand)]
    Suppress(SuppressCommand),
    /// Print a survey's metrics.
    Report(ReportArgs),
    /// Store connections: a platform's order webhook feeding a survey (post-order emails).
    #[command(subcommand)]
    Connections(ConnectionsCommand),
    /// Alert rules: matching answers are posted to Slack or any HTTPS endpoint, signed.
    #[command(subcommand)]
    Alerts(AlertsCommand),
    /// List the invitations orders made: order, masked address, due time, status.
    Invitations {
        /// Only this connection's.
        #[arg(long)]
        connection: Option<String>,
        /// How many, newest first (a page, with --all).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Start after the previous page: the cursor it printed.
        #[arg(long, conflicts_with = "all")]
        cursor: Option<String>,
        /// Every invitation, page after page.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand)]
enum ConnectionsCommand {
    /// Connect a store (or replace a connection). The signing secret is read from the
    /// environment variable SONDEO_WEBHOOK_SECRET, never from the command line.
    Add(ConnectionArgs),
    /// List connections and the webhook URL to paste into each platform.
    List,
    /// Remove a connection (its webhooks then answer 404).
    Remove { id: String },
}

#[derive(Subcommand)]
enum AlertsCommand {
    /// Add a rule; prints its signing secret once (receivers verify Sondeo-Signature with it).
    Add(AlertArgs),
    /// List rules (without their secrets).
    List {
        /// Only this survey's.
        #[arg(long)]
        survey: Option<String>,
    },
    /// Remove a rule.
    Remove { id: String },
}

#[derive(clap::Args)]
struct AlertArgs {
    #[arg(long)]
    survey: String,
    /// Only answers at this touchpoint.
    #[arg(long)]
    touchpoint: Option<String>,
    /// Lowest matching score (such as 0 for NPS detractors).
    #[arg(long)]
    min_score: Option<i64>,
    /// Highest matching score (such as 6 for NPS detractors).
    #[arg(long)]
    max_score: Option<i64>,
    /// Only answers with (true) or without (false) a comment.
    #[arg(long)]
    has_comment: Option<bool>,
    /// The endpoint: a Slack incoming webhook or any HTTPS URL.
    #[arg(long)]
    url: String,
    /// slack or generic (JSON).
    #[arg(long, default_value = "generic")]
    kind: String,
}

#[derive(clap::Args)]
struct ConnectionArgs {
    /// The connection's id (lowercase slug); the webhook URL ends with it.
    id: String,
    /// shopify, woocommerce or stripe.
    #[arg(long)]
    platform: String,
    #[arg(long)]
    survey: String,
    #[arg(long)]
    touchpoint: String,
    /// Minutes between the order and its email (0 to 86400, i.e. up to 60 days).
    #[arg(long, default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=i64::from(sondeo_domain::orders::MAX_DELAY_MINUTES)))]
    delay_minutes: u32,
    /// The From address: name@domain or 'Name <name@domain>' (a verified SES identity).
    #[arg(long)]
    sender: String,
    /// The store's name, shown in the email.
    #[arg(long)]
    store_name: String,
}

#[derive(Subcommand)]
enum SuppressCommand {
    /// List who is on the suppression list.
    List,
    /// Put a respondent (email address or id) on the list.
    Add { respondent: String },
    /// Take a respondent off the list.
    Remove { respondent: String },
}

#[derive(Args)]
struct SnippetArgs {
    #[arg(long)]
    survey: String,
    #[arg(long)]
    touchpoint: String,
    /// The email tool whose merge tags the links use.
    #[arg(long, default_value = "plain", value_parser = ["mailchimp", "klaviyo", "hubspot", "brevo", "plain"])]
    tool: String,
    /// `token`: each recipient's own links, from the token column of `sondeo links --format
    /// token` imported as a contact field; `campaign`: one campaign link, the recipient's email
    /// from the tool's merge tag.
    #[arg(long, default_value = "token", value_parser = ["token", "campaign"])]
    mode: String,
    /// The send a campaign link belongs to (campaign mode).
    #[arg(long)]
    send: Option<String>,
    /// Days until a campaign link expires.
    #[arg(long, default_value_t = 30)]
    days: i64,
    /// Print the plain-text alternative instead of the HTML.
    #[arg(long)]
    text: bool,
}

#[derive(Args)]
struct LinksArgs {
    #[arg(long)]
    survey: String,
    #[arg(long)]
    touchpoint: String,
    /// Days until the links expire.
    #[arg(long, default_value_t = 30)]
    days: i64,
    /// `urls`: the answer page and one URL per score; `token`: one token column
    /// (links are BASE/r/TOKEN?score=N).
    #[arg(long, default_value = "urls", value_parser = ["urls", "token"])]
    format: String,
    /// The column holding the respondent id (default: id, respondent, customer_id, email, …).
    #[arg(long)]
    id_column: Option<String>,
    /// The send the links belong to (a campaign wave such as 2026-q4): the same recipient
    /// counts once per send.
    #[arg(long)]
    send: Option<String>,
    /// Where to write the CSV for the email tool (default: standard output).
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// The recipients CSV (`-` for standard input): a header line, then one recipient per row.
    recipients: PathBuf,
}

#[derive(Args)]
struct ImportArgs {
    /// The survey the answers belong to.
    #[arg(long)]
    survey: String,
    /// The touchpoint of every row (or map a column: --map touchpoint=COLUMN).
    #[arg(long)]
    touchpoint: Option<String>,
    /// A known export's columns: delighted (CSV export), delighted-json (API
    /// survey_responses pages), formbricks, typeform.
    #[arg(long, value_parser = ["delighted", "delighted-json", "formbricks", "typeform"])]
    preset: Option<String>,
    /// field=COLUMN, repeatable; fields: id, respondent, score, comment, answered-at,
    /// touchpoint, send, properties (comma-separated columns). Overrides the preset.
    #[arg(long = "map", value_name = "FIELD=COLUMN")]
    map: Vec<String>,
    /// A file of field=COLUMN lines (# comments), applied before --map.
    #[arg(long)]
    mapping: Option<PathBuf>,
    /// The IANA zone of times without an offset (Europe/Paris); also the zone of --send-per.
    #[arg(long)]
    tz: Option<String>,
    /// One send for every row (a campaign wave).
    #[arg(long, conflicts_with = "send_per")]
    send: Option<String>,
    /// One send per month or quarter of the answer time, so each wave of a recurring survey
    /// keeps its own answer per person.
    #[arg(long, value_parser = ["month", "quarter"])]
    send_per: Option<String>,
    /// Check every row and print what would be imported; send nothing.
    #[arg(long)]
    dry_run: bool,
    /// Where refused rows go, as CSV: line,reason,row (default: FILE.rejects.csv).
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// The file's format (default: from the preset, else the file name: .jsonl/.ndjson/.json
    /// are JSON Lines).
    #[arg(long, value_parser = ["csv", "jsonl"])]
    format: Option<String>,
    /// The export file.
    file: PathBuf,
}

#[derive(Subcommand)]
enum SurveyCommand {
    /// Create a survey.
    Create(CreateArgs),
    /// List surveys.
    List,
    /// Show one survey as JSON.
    Show { id: String },
}

#[derive(Args)]
struct CreateArgs {
    /// Survey id (lowercase slug).
    #[arg(long)]
    id: String,
    /// nps, csat, ces, likert5, likert7, yes_no or duration.
    #[arg(long, value_parser = |s: &str| s.parse::<SurveyKind>())]
    kind: SurveyKind,
    /// The question.
    #[arg(long)]
    question: String,
    /// The follow-up question shown after the score.
    #[arg(long, default_value = "")]
    follow_up: String,
    /// en or es.
    #[arg(long, default_value = "en", value_parser = |s: &str| s.parse::<Locale>())]
    locale: Locale,
    /// A touchpoint slug, optionally with its journey stage: `post-purchase:conversion`. Repeat for more.
    #[arg(long = "touchpoint", required = true)]
    touchpoints: Vec<String>,
    /// Public key for website submissions to POST /v1/responses.
    #[arg(long)]
    public_key: Option<String>,
    /// The business's name, shown on the survey's pages and in the email snippet.
    #[arg(long)]
    brand_name: Option<String>,
    /// Accent colour #rrggbb (white text on it must reach 4.5:1); needs --brand-name.
    #[arg(long, requires = "brand_name")]
    accent: Option<String>,
    /// The logo's https:// URL; needs --brand-name.
    #[arg(long, requires = "brand_name")]
    logo_url: Option<String>,
    /// Post-order invitations: nobody is invited to this survey again within this many days.
    #[arg(long = "frequency-cap-days")]
    frequency_cap_days: Option<u32>,
}

#[derive(Args)]
struct ReportArgs {
    #[arg(long)]
    survey: String,
    /// First day, YYYY-MM-DD (default: 29 days before --to).
    #[arg(long)]
    from: Option<String>,
    /// Last day, YYYY-MM-DD (default: today, UTC).
    #[arg(long)]
    to: Option<String>,
    /// day, week or month.
    #[arg(long, default_value = "week")]
    bucket: String,
    #[arg(long)]
    touchpoint: Option<String>,
    #[arg(long)]
    stage: Option<String>,
    /// Only the answers of this send (a campaign wave); without it, every send.
    #[arg(long)]
    send: Option<String>,
    /// IANA time zone the days are read in, such as Europe/Madrid (default: UTC).
    #[arg(long)]
    tz: Option<String>,
    /// Only answers whose properties match, such as plan:pro,country:FR.
    #[arg(long)]
    segment: Option<String>,
    /// Also break the numbers down by the values of this response property.
    #[arg(long)]
    group_by: Option<String>,
    /// Leave out the change against the previous period of the same length.
    #[arg(long)]
    no_compare: bool,
    /// Print the raw JSON report.
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    // Logs go to standard error: standard output carries what a command prints (a CSV, a report).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    if let Command::Serve { addr, base_url } = &cli.command {
        return serve(&cli.data_dir, *addr, base_url.clone()).await;
    }
    // Rust ignores SIGPIPE, so printing to a closed pipe (`sondeo links … | head -1`) would
    // panic; with the default action a command ends quietly, as other command-line tools do.
    // (Not for `serve`: its sockets. Socket writes here pass MSG_NOSIGNAL and never raise it.)
    #[cfg(unix)]
    // SAFETY: sets the process-wide SIGPIPE action to SIG_DFL, a valid action; nothing in
    // this process installed a handler for it.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let client = match (&cli.api, &cli.api_key) {
        (Some(base), Some(key)) => ApiClient::remote(base, key)?,
        (Some(_), None) => return Err("--api needs --api-key (or SONDEO_API_KEY)".into()),
        (None, _) => {
            // Links minted locally point where SONDEO_BASE_URL says `sondeo serve` (or a
            // tunnel to it) listens, else where the last `serve` on this data folder said it
            // served them, else at serve's default address.
            let base = std::env::var("SONDEO_BASE_URL")
                .ok()
                .filter(|b| !b.trim().is_empty())
                .or_else(|| sondeo_local::local::remembered_base_url(&cli.data_dir))
                .unwrap_or_else(|| LOCAL_BASE_URL.to_string());
            ApiClient::Local(Arc::new(LocalStack::open(&cli.data_dir, Some(base)).await?))
        }
    };
    match cli.command {
        Command::Serve { .. } => Ok(()),
        Command::Survey(SurveyCommand::Create(a)) => {
            let touchpoints = a
                .touchpoints
                .iter()
                .map(|t| parse_touchpoint(t))
                .collect::<Result<Vec<_>, _>>()?;
            let survey = Survey {
                id: a.id,
                kind: a.kind,
                question: a.question,
                follow_up: a.follow_up,
                locale: a.locale,
                touchpoints,
                public_key: a.public_key,
                brand: a.brand_name.map(|name| sondeo_domain::survey::Brand {
                    name,
                    accent: a.accent,
                    logo_url: a.logo_url,
                }),
                frequency_cap_days: a.frequency_cap_days,
            };
            let created = client
                .call(
                    Method::POST,
                    "/v1/surveys",
                    Some(serde_json::to_value(&survey)?),
                )
                .await?;
            println!(
                "created survey '{}'",
                created["id"].as_str().unwrap_or_default()
            );
            Ok(())
        }
        Command::Survey(SurveyCommand::List) => {
            let list = client.call(Method::GET, "/v1/surveys", None).await?;
            let surveys: Vec<Survey> = serde_json::from_value(list["surveys"].clone())?;
            println!("{:<24} {:<9} {:<40} touchpoints", "id", "kind", "question");
            for s in surveys {
                let tps: Vec<&str> = s.touchpoints.iter().map(|t| t.slug.as_str()).collect();
                println!(
                    "{:<24} {:<9} {:<40} {}",
                    s.id,
                    s.kind.to_string(),
                    sondeo_domain::survey::clip(&s.question, 38),
                    tps.join(", ")
                );
            }
            Ok(())
        }
        Command::Survey(SurveyCommand::Show { id }) => {
            let s = client
                .call(
                    Method::GET,
                    &format!("/v1/surveys/{}", client::path_segment(&id)),
                    None,
                )
                .await?;
            println!("{}", serde_json::to_string_pretty(&s)?);
            Ok(())
        }
        Command::Link {
            survey,
            touchpoint,
            respondent,
            send,
            campaign,
            rid,
            days,
        } => {
            let mut body = serde_json::json!({"survey": survey, "touchpoint": touchpoint, "expires_in_days": days});
            for (name, value) in [("respondent", respondent), ("send", send), ("rid", rid)] {
                if let Some(v) = value {
                    body[name] = v.into();
                }
            }
            if campaign {
                body["campaign"] = true.into();
            }
            let out = client.call(Method::POST, "/v1/links", Some(body)).await?;
            println!("page: {}", out["page"].as_str().unwrap_or_default());
            for l in out["links"].as_array().into_iter().flatten() {
                println!(
                    "{:>3}  {}",
                    l["score"],
                    l["url"].as_str().unwrap_or_default()
                );
            }
            Ok(())
        }
        Command::Links(a) => links(&client, a).await,
        Command::Import(a) => import(&client, a).await,
        Command::Suppress(SuppressCommand::List) => {
            let out = client.call(Method::GET, "/v1/suppressions", None).await?;
            let list = out["suppressions"].as_array().cloned().unwrap_or_default();
            println!("{:<40} {:<10} since", "respondent", "via");
            for e in &list {
                let at = e["at"].as_i64().unwrap_or(0);
                println!(
                    "{:<40} {:<10} {}",
                    e["respondent"].as_str().unwrap_or_default(),
                    e["via"].as_str().unwrap_or_default(),
                    sondeo_domain::time::Day::from_unix_ms(at)
                );
            }
            eprintln!("{} on the suppression list", list.len());
            Ok(())
        }
        Command::Suppress(SuppressCommand::Add { respondent }) => {
            let out = client
                .call(
                    Method::POST,
                    "/v1/suppressions",
                    Some(serde_json::json!({"respondent": respondent, "via": "cli"})),
                )
                .await?;
            println!(
                "'{}' is on the suppression list",
                out["respondent"].as_str().unwrap_or_default()
            );
            Ok(())
        }
        Command::Suppress(SuppressCommand::Remove { respondent }) => {
            let out = client
                .call(
                    Method::DELETE,
                    &format!(
                        "/v1/suppressions?{}",
                        client::query_string(&[("respondent", respondent)])
                    ),
                    None,
                )
                .await?;
            println!(
                "'{}' is off the suppression list",
                out["removed"].as_str().unwrap_or_default()
            );
            Ok(())
        }
        Command::Connections(ConnectionsCommand::Add(a)) => {
            let secret = std::env::var("SONDEO_WEBHOOK_SECRET").map_err(|_| {
                "set SONDEO_WEBHOOK_SECRET to the webhook signing secret from the platform's \
                 settings (it is never taken from the command line)"
                    .to_string()
            })?;
            let out = client
                .call(
                    Method::POST,
                    "/v1/connections",
                    Some(serde_json::json!({
                        "id": a.id,
                        "platform": a.platform,
                        "survey": a.survey,
                        "touchpoint": a.touchpoint,
                        "delay_minutes": a.delay_minutes,
                        "sender": a.sender,
                        "store_name": a.store_name,
                        "secret": secret,
                    })),
                )
                .await?;
            println!(
                "connected '{}'; point the {} webhook at:\n  {}",
                out["id"].as_str().unwrap_or_default(),
                out["platform"].as_str().unwrap_or_default(),
                out["webhook_url"].as_str().unwrap_or_default()
            );
            Ok(())
        }
        Command::Connections(ConnectionsCommand::List) => {
            let out = client.call(Method::GET, "/v1/connections", None).await?;
            let list = out["connections"].as_array().cloned().unwrap_or_default();
            for c in &list {
                println!(
                    "{:<20} {:<12} {}/{}  delay {} min  from {}\n  {}",
                    c["id"].as_str().unwrap_or_default(),
                    c["platform"].as_str().unwrap_or_default(),
                    c["survey"].as_str().unwrap_or_default(),
                    c["touchpoint"].as_str().unwrap_or_default(),
                    c["delay_minutes"].as_u64().unwrap_or(0),
                    c["sender"].as_str().unwrap_or_default(),
                    c["webhook_url"].as_str().unwrap_or_default(),
                );
            }
            eprintln!("{} connection(s)", list.len());
            Ok(())
        }
        Command::Connections(ConnectionsCommand::Remove { id }) => {
            client
                .call(
                    Method::DELETE,
                    &format!(
                        "/v1/connections?{}",
                        client::query_string(&[("id", id.clone())])
                    ),
                    None,
                )
                .await?;
            println!("removed connection '{id}'");
            Ok(())
        }
        Command::Alerts(AlertsCommand::Add(a)) => {
            let out = client
                .call(
                    Method::POST,
                    "/v1/alerts",
                    Some(serde_json::json!({
                        "survey": a.survey,
                        "touchpoint": a.touchpoint,
                        "min_score": a.min_score,
                        "max_score": a.max_score,
                        "has_comment": a.has_comment,
                        "url": a.url,
                        "kind": a.kind,
                    })),
                )
                .await?;
            println!(
                "added alert rule '{}'; its signing secret (shown only now):\n  {}",
                out["alert"]["id"].as_str().unwrap_or_default(),
                out["secret"].as_str().unwrap_or_default()
            );
            Ok(())
        }
        Command::Alerts(AlertsCommand::List { survey }) => {
            let query = survey
                .map(|s| format!("?{}", client::query_string(&[("survey", s)])))
                .unwrap_or_default();
            let out = client
                .call(Method::GET, &format!("/v1/alerts{query}"), None)
                .await?;
            let list = out["alerts"].as_array().cloned().unwrap_or_default();
            for r in &list {
                let bound = |v: &serde_json::Value| {
                    v.as_i64()
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| "*".into())
                };
                println!(
                    "{:<20} {}/{}  scores {}..{}  comment {}  {} {}",
                    r["id"].as_str().unwrap_or_default(),
                    r["survey"].as_str().unwrap_or_default(),
                    r["touchpoint"].as_str().unwrap_or("*"),
                    bound(&r["min_score"]),
                    bound(&r["max_score"]),
                    r["has_comment"]
                        .as_bool()
                        .map(|b| if b { "required" } else { "absent" })
                        .unwrap_or("any"),
                    r["target"]["kind"].as_str().unwrap_or_default(),
                    redact_url(r["target"]["url"].as_str().unwrap_or_default()),
                );
            }
            eprintln!("{} alert rule(s)", list.len());
            Ok(())
        }
        Command::Alerts(AlertsCommand::Remove { id }) => {
            client
                .call(
                    Method::DELETE,
                    &format!("/v1/alerts/{}", client::path_segment(&id)),
                    None,
                )
                .await?;
            println!("removed alert rule '{id}'");
            Ok(())
        }
        Command::Invitations {
            connection,
            limit,
            cursor,
            all,
        } => {
            println!(
                "{:<16} {:<20} {:<28} {:<20} {:<9} reason",
                "connection", "order", "email", "due (UTC)", "status"
            );
            let mut cursor = cursor;
            let mut count = 0usize;
            loop {
                let mut query = vec![("limit", limit.to_string())];
                if let Some(c) = &connection {
                    query.push(("connection", c.clone()));
                }
                if let Some(c) = cursor.take() {
                    query.push(("cursor", c));
                }
                let out = client
                    .call(
                        Method::GET,
                        &format!("/v1/invitations?{}", client::query_string(&query)),
                        None,
                    )
                    .await?;
                let list = out["invitations"].as_array().cloned().unwrap_or_default();
                for i in &list {
                    let due = sondeo_domain::time::rfc3339(i["due_at"].as_i64().unwrap_or(0));
                    println!(
                        "{:<16} {:<20} {:<28} {:<20} {:<9} {}",
                        i["connection"].as_str().unwrap_or_default(),
                        // A Stripe order without a reference the customer knows: its id.
                        i["order_ref"]
                            .as_str()
                            .filter(|r| !r.is_empty())
                            .or(i["order"].as_str())
                            .unwrap_or_default(),
                        i["email"].as_str().unwrap_or_default(),
                        due.get(..16).unwrap_or(&due),
                        i["status"].as_str().unwrap_or_default(),
                        i["reason"].as_str().unwrap_or_default(),
                    );
                }
                count += list.len();
                cursor = out["next_cursor"].as_str().map(str::to_string);
                if !all || cursor.is_none() {
                    break;
                }
            }
            eprintln!("{count} invitation(s)");
            if let Some(next) = cursor {
                eprintln!("more follow: add --cursor {next} for the next page, or --all");
            }
            Ok(())
        }
        Command::Snippet(a) => {
            let mut query = vec![
                ("survey", a.survey),
                ("touchpoint", a.touchpoint),
                ("tool", a.tool),
                ("mode", a.mode),
                ("expires_in_days", a.days.to_string()),
            ];
            if let Some(send) = a.send {
                query.push(("send", send));
            }
            let out = client
                .call(
                    Method::GET,
                    &format!("/v1/snippet?{}", client::query_string(&query)),
                    None,
                )
                .await?;
            let part = if a.text { "text" } else { "html" };
            println!("{}", out[part].as_str().unwrap_or_default());
            if let Some(field) = out["token_field"].as_str() {
                eprintln!(
                    "import the token column of `sondeo links --format token` into the contact field {field}"
                );
            }
            Ok(())
        }
        Command::Report(r) => report(&client, r).await,
    }
}

async fn links(client: &ApiClient, a: LinksArgs) -> Result<(), Box<dyn std::error::Error>> {
    use std::io::IsTerminal;
    let input = if a.recipients.as_os_str() == "-" {
        let mut all = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut all)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        all
    } else {
        std::fs::read(&a.recipients)
            .map_err(|e| format!("cannot read {}: {e}", a.recipients.display()))?
    };
    let output: Box<dyn std::io::Write> = match &a.out {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?,
        ),
        // Not locked for the whole run: the in-process API may log while rows are written.
        None => Box::new(std::io::stdout()),
    };
    let request = sondeo_local::bulk::BulkRequest {
        survey: a.survey,
        touchpoint: a.touchpoint,
        days: a.days,
        format: a.format,
        id_column: a.id_column,
        send: a.send,
    };
    let show = std::io::stderr().is_terminal();
    let started = std::time::Instant::now();
    let summary = sondeo_local::bulk::mint_file(
        client,
        &request,
        &input,
        std::io::BufWriter::new(output),
        |done| {
            if show {
                eprint!("\r{done} recipients done");
            }
        },
    )
    .await?;
    if show {
        eprintln!();
    }
    if !summary.replaced.is_empty() {
        let s = if summary.replaced.len() == 1 { "" } else { "s" };
        eprintln!(
            "input column{s} {} replaced by the fresh links (the old values are left out)",
            summary.replaced.join(", ")
        );
    }
    for e in &summary.errors {
        eprintln!("line {}: {}", e.line, e.message);
    }
    eprintln!(
        "{} recipients got links, {} rows left out, in {:.1} s",
        summary.minted,
        summary.errors.len(),
        started.elapsed().as_secs_f64()
    );
    if summary.minted == 0 && !summary.errors.is_empty() {
        return Err("no row got links".into());
    }
    Ok(())
}

async fn import(client: &ApiClient, a: ImportArgs) -> Result<(), Box<dyn std::error::Error>> {
    use sondeo_domain::import::SendRule;
    use sondeo_local::import::{Format, ImportPlan, Mapping, Preset};
    use std::io::IsTerminal;
    let preset = a.preset.as_deref().map(Preset::parse).transpose()?;
    let mut mapping = preset.map(Preset::mapping).unwrap_or_else(Mapping::default);
    if let Some(path) = &a.mapping {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        mapping.apply(text.lines())?;
    }
    mapping.apply(a.map.iter().map(String::as_str))?;
    let zone =
        match &a.tz {
            Some(name) => Some(jiff::tz::TimeZone::get(name.trim()).map_err(|_| {
                format!("'{name}' is not a known IANA time zone (Europe/Paris, UTC)")
            })?),
            None => preset.and_then(Preset::zone),
        };
    let send = match (&a.send, a.send_per.as_deref()) {
        (Some(name), _) => {
            sondeo_domain::response::check_send(name)?;
            SendRule::Named(name.clone())
        }
        (None, Some("month")) => SendRule::PerMonth,
        (None, Some(_)) => SendRule::PerQuarter,
        (None, None) => SendRule::Default,
    };
    let by_name = a
        .file
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e, "jsonl" | "ndjson" | "json"));
    let format = match a.format.as_deref() {
        Some("jsonl") => Format::JsonLines,
        Some(_) => Format::Csv,
        None => match preset {
            Some(p) => p.format(),
            None if by_name => Format::JsonLines,
            None => Format::Csv,
        },
    };
    let plan = ImportPlan {
        survey: a.survey,
        touchpoint: a.touchpoint,
        mapping,
        zone,
        send,
        format,
        dry_run: a.dry_run,
        preset,
    };
    let input = std::fs::File::open(&a.file)
        .map_err(|e| format!("cannot read {}: {e}", a.file.display()))?;
    let rejects_path = a.rejects.clone().unwrap_or_else(|| {
        let mut name = a.file.clone().into_os_string();
        name.push(".rejects.csv");
        PathBuf::from(name)
    });
    let rejects = std::fs::File::create(&rejects_path)
        .map_err(|e| format!("cannot write {}: {e}", rejects_path.display()))?;
    let show = std::io::stderr().is_terminal();
    let started = std::time::Instant::now();
    let mut last_shown = started;
    let summary = sondeo_local::import::import_file(
        client,
        &plan,
        std::io::BufReader::with_capacity(1 << 16, input),
        std::io::BufWriter::new(rejects),
        |read| {
            let now = std::time::Instant::now();
            if show && now.duration_since(last_shown).as_millis() >= 200 {
                last_shown = now;
                let rate = read as f64 / started.elapsed().as_secs_f64().max(1e-3);
                eprint!("\r{read} rows read, {rate:.0} rows/s   ");
            }
        },
    )
    .await;
    let summary = match summary {
        Ok(summary) => summary,
        Err(e) => {
            // A run stopped before any row was refused (a mapping error, say) leaves no rejects
            // file holding only its header behind.
            let header_only = std::fs::metadata(&rejects_path).is_ok_and(|m| m.len() <= 16);
            if header_only {
                let _ = std::fs::remove_file(&rejects_path);
            }
            return Err(e.into());
        }
    };
    if show {
        eprintln!();
    }
    let secs = started.elapsed().as_secs_f64();
    let verb = if plan.dry_run {
        "would import"
    } else {
        "imported"
    };
    println!("survey {}", plan.survey);
    for (touchpoint, n) in &summary.per_touchpoint {
        println!("  {touchpoint:<24} {n:>10} {verb}");
    }
    println!(
        "{} rows read, {} {verb}, {} refused{} in {secs:.1} s ({:.0} rows/s)",
        summary.read,
        summary.imported,
        summary.refused,
        if summary.refused > 0 {
            format!(" (see {})", rejects_path.display())
        } else {
            String::new()
        },
        summary.read as f64 / secs.max(1e-3),
    );
    if summary.refused == 0 {
        // Nothing to look at: no empty rejects file left behind.
        let _ = std::fs::remove_file(&rejects_path);
    }
    if summary.imported == 0 && summary.refused > 0 {
        return Err("no row could be imported".into());
    }
    Ok(())
}

fn parse_touchpoint(spec: &str) -> Result<Touchpoint, String> {
    match spec.split_once(':') {
        Some((slug, stage)) => Ok(Touchpoint {
            slug: slug.to_string(),
            stage: Some(stage.parse::<JourneyStage>()?),
        }),
        None => Ok(Touchpoint {
            slug: spec.to_string(),
            stage: None,
        }),
    }
}

async fn serve(
    data_dir: &Path,
    addr: SocketAddr,
    base_url: Option<String>,
) -> Result<(), Box<dyn std::error::Error>> {
    let base = base_url.clone().unwrap_or_else(|| format!("http://{addr}"));
    let stack = Arc::new(LocalStack::open(data_dir, Some(base.clone())).await?);
    let demo = stack.ensure_demo_survey().await?;
    let server = sondeo_local::server::start(stack.clone(), addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let now = sondeo_domain::time::now_ms() / 1000;
    let claims = sondeo_domain::token::LinkClaims {
        survey: DEMO_SURVEY.into(),
        touchpoint: "post-purchase".into(),
        respondent: "demo@example.com".into(),
        issued_at: now,
        expires_at: now + 30 * 86_400,
    };
    let token = stack.keyring.sign(&claims)?;
    if let Err(e) = sondeo_local::local::remember_base_url(data_dir, &base) {
        eprintln!(
            "warning: cannot record the base URL in {} ({e}): local commands will mint links \
             for {LOCAL_BASE_URL} unless SONDEO_BASE_URL is set",
            data_dir.display()
        );
    }
    println!(
        "Sondeo is running at {base} (local mode; data in {})",
        stack.db_path.display()
    );
    println!();
    println!(
        "Demo survey '{}' ({}): {}",
        demo.id, demo.kind, demo.question
    );
    println!("One-click link (score 9, touchpoint post-purchase, respondent demo@example.com) — open it in a browser:");
    println!("  {base}/r/{token}?score=9");
    println!();
    println!("Then see the metric change:");
    println!("  {}", report_command(&this_binary(), data_dir));
    println!(
        "  curl -H 'Authorization: Bearer {}' '{base}/v1/metrics?survey={DEMO_SURVEY}'",
        stack.api_key
    );
    println!("Dashboard (log in with the API key above): {base}/dashboard");
    println!();
    println!(
        "Store webhooks: {base}/v1/webhooks/<shopify|woocommerce|stripe>/<connection> \
         (sondeo connections add); invitation emails are written to {}",
        stack.outbox.dir().display()
    );
    println!();
    println!(
        "Stop with Ctrl-C; everything is kept in {} for the next start.",
        data_dir.display()
    );
    tokio::signal::ctrl_c().await?;
    println!("stopping…");
    server.shutdown().await;
    Ok(())
}

/// How to run this same binary again: its real path, or (when that is unknown) the cargo command
/// that builds and runs the release binary.
fn this_binary() -> Vec<String> {
    match std::env::current_exe() {
        Ok(path) => vec![path.display().to_string()],
        Err(_) => CARGO_RUN_RELEASE.map(String::from).to_vec(),
    }
}

/// Builds (if needed) and runs the release binary, as the README's run command does.
const CARGO_RUN_RELEASE: [&str; 8] = [
    "cargo",
    "run",
    "--release",
    "-p",
    "sondeo-cli",
    "--bin",
    "sondeo",
    "--",
];

/// The `report` command `serve` prints, ready to paste into a shell from any folder: this binary
/// on the same data folder (as an absolute path), quoted where the shell needs it.
fn report_command(binary: &[String], data_dir: &Path) -> String {
    let data_dir = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let data_dir = data_dir.display().to_string();
    let words = binary.iter().map(String::as_str).chain([
        "--data-dir",
        &data_dir,
        "report",
        "--survey",
        DEMO_SURVEY,
    ]);
    shlex::try_join(words).unwrap_or_else(|_| format!("sondeo report --survey {DEMO_SURVEY}"))
}

async fn report(client: &ApiClient, r: ReportArgs) -> Result<(), Box<dyn std::error::Error>> {
    let mut query = vec![("survey", r.survey), ("bucket", r.bucket)];
    for (k, v) in [
        ("from", r.from),
        ("to", r.to),
        ("touchpoint", r.touchpoint),
        ("stage", r.stage),
        ("send", r.send),
        ("tz", r.tz),
        ("segment", r.segment),
        ("group_by", r.group_by),
        ("compare", (!r.no_compare).then(|| "previous".to_string())),
    ] {
        if let Some(v) = v {
            query.push((k, v));
        }
    }
    let rep = client
        .call(
            Method::GET,
            &format!("/v1/metrics?{}", client::query_string(&query)),
            None,
        )
        .await?;
    if r.json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
        return Ok(());
    }
    print!("{}", sondeo_local::report::render(&rep));
    Ok(())
}

/// An endpoint URL as listed: scheme, host and port only (Slack webhook paths are secrets).
fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            format!("{scheme}://{host}/…")
        }
        None => "…".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits a printed command line as a POSIX shell would, and parses it as `sondeo` would.
    fn as_run(line: &str) -> (Vec<String>, Cli) {
        let words = shlex::split(line).expect("the shell can split the line");
        let cli = Cli::try_parse_from(&words).expect("sondeo accepts the line");
        (words, cli)
    }

    #[test]
    fn serve_prints_a_report_command_for_this_binary_and_its_data_folder() {
        // GIVEN a binary and a data folder whose paths need quoting in a shell
        let binary = vec!["/opt/my tools/sondeo".to_string()];
        let data_dir = Path::new("/srv/survey data/it's here");
        // WHEN serve prints the report command
        let line = report_command(&binary, data_dir);
        // THEN pasted into a shell it runs that binary's report on that folder
        let (words, cli) = as_run(&line);
        assert_eq!(words[0], "/opt/my tools/sondeo");
        assert_eq!(cli.data_dir, data_dir);
        assert!(cli.api.is_none());
        assert!(
            matches!(&cli.command, Command::Report(r) if r.survey == DEMO_SURVEY),
            "{line}"
        );
    }

    #[test]
    fn the_printed_report_command_names_the_data_folder_by_its_absolute_path() {
        // GIVEN serve started with the default, relative data folder
        let line = report_command(&this_binary(), Path::new(".sondeo"));
        // THEN the printed command finds the same folder from any working directory
        let (words, cli) = as_run(&line);
        assert_eq!(
            Path::new(&words[0]),
            std::env::current_exe().unwrap(),
            "the same binary, by its real path"
        );
        assert!(cli.data_dir.is_absolute(), "{line}");
        assert_eq!(
            cli.data_dir,
            std::env::current_dir().unwrap().join(".sondeo")
        );
    }

    #[test]
    fn without_its_own_path_the_printed_command_runs_the_release_build_through_cargo() {
        let cargo = CARGO_RUN_RELEASE.map(String::from).to_vec();
        let line = report_command(&cargo, Path::new("/tmp/sondeo-data"));
        let words = shlex::split(&line).unwrap();
        assert_eq!(words[..8], cargo[..]);
        // cargo hands what follows `--` to the binary.
        let cli = Cli::try_parse_from(&words[7..]).unwrap();
        assert_eq!(cli.data_dir, Path::new("/tmp/sondeo-data"));
        assert!(matches!(&cli.command, Command::Report(r) if r.survey == DEMO_SURVEY));
    }

    #[test]
    fn listed_alert_urls_keep_only_scheme_and_host() {
        assert_eq!(
            super::redact_url("https://hooks.slack.com/services/T0/B0/secret?x=1"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            super::redact_url("http://127.0.0.1:9000"),
            "http://127.0.0.1:9000/…"
        );
        assert_eq!(super::redact_url("nonsense"), "…");
    }
}
