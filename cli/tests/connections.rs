//! `sondeo connections` and `sondeo invitations` through the real binary in local mode: a store
//! is connected with its secret from the environment (never the command line), listed with its
//! webhook URL and without the secret, refused with a reason when something is wrong, and
//! removed; links and webhook URLs follow the address `serve` runs on, and the data folder is
//! its owner's alone.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn data_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sondeo-cli-connections-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn sondeo(data: &Path, args: &[&str], secret: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sondeo"));
    cmd.arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("SONDEO_BASE_URL")
        .env_remove("SONDEO_API_URL")
        .env_remove("SONDEO_API_KEY")
        .env_remove("SONDEO_WEBHOOK_SECRET");
    if let Some(s) = secret {
        cmd.env("SONDEO_WEBHOOK_SECRET", s);
    }
    cmd.output().expect("sondeo runs")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Creates the `post-order` NPS survey (touchpoint `post-purchase`), with a frequency cap.
fn create_survey(data: &Path, cap_days: Option<u32>) {
    let cap = cap_days.map(|d| d.to_string());
    let mut args = vec![
        "survey",
        "create",
        "--id",
        "post-order",
        "--kind",
        "nps",
        "--question",
        "How likely are you to recommend Tienda Sol?",
        "--touchpoint",
        "post-purchase",
    ];
    if let Some(cap) = &cap {
        args.extend(["--frequency-cap-days", cap.as_str()]);
    }
    let out = sondeo(data, &args, None);
    assert!(out.status.success(), "{:?}", text(&out));
}

const ADD: &[&str] = &[
    "connections",
    "add",
    "tienda-sol",
    "--platform",
    "shopify",
    "--survey",
    "post-order",
    "--touchpoint",
    "post-purchase",
    "--delay-minutes",
    "4320",
    "--sender",
    "Tienda Sol <hola@tiendasol.example>",
    "--store-name",
    "Tienda Sol",
];

#[test]
fn a_store_is_connected_listed_without_its_secret_and_removed() {
    let data = data_dir();
    create_survey(&data, Some(90));

    // No secret in the environment: refused, saying where it goes.
    let out = sondeo(&data, ADD, None);
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("SONDEO_WEBHOOK_SECRET"),
        "{:?}",
        text(&out)
    );

    // A touchpoint the survey does not have, a platform that does not exist: refused.
    let mut bad = ADD.to_vec();
    bad[8] = "checkout";
    let out = sondeo(&data, &bad, Some("shpss_secret"));
    assert!(!out.status.success());
    assert!(text(&out).1.contains("checkout"), "{:?}", text(&out));
    let mut bad = ADD.to_vec();
    bad[4] = "magento";
    let out = sondeo(&data, &bad, Some("shpss_secret"));
    assert!(
        text(&out).1.contains("shopify, woocommerce or stripe"),
        "{:?}",
        text(&out)
    );

    let out = sondeo(&data, ADD, Some("shpss_do-not-print-me"));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("/v1/webhooks/shopify/tienda-sol"),
        "the webhook URL to paste into Shopify: {stdout}"
    );
    let out = sondeo(&data, &["connections", "list"], None);
    let (stdout, stderr) = text(&out);
    assert!(
        stdout.contains("tienda-sol") && stdout.contains("delay 4320 min"),
        "{stdout}"
    );
    assert!(stderr.contains("1 connection(s)"), "{stderr}");
    for output in [&stdout, &stderr] {
        assert!(
            !output.contains("do-not-print-me"),
            "the secret never comes back"
        );
    }

    let out = sondeo(&data, &["invitations", "--connection", "tienda-sol"], None);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.starts_with("connection"), "{stdout}");
    assert!(stderr.contains("0 invitation(s)"), "{stderr}");

    let out = sondeo(&data, &["connections", "remove", "tienda-sol"], None);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = sondeo(&data, &["connections", "remove", "tienda-sol"], None);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("no connection"), "{:?}", text(&out));
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn local_commands_mint_for_the_address_serve_runs_on_and_keep_the_data_folder_private() {
    // A data folder that does not exist yet: sondeo creates it.
    let data = data_dir().join("new");
    let serve = common::Serve::start(&data);
    let base = format!("http://127.0.0.1:{}", serve.port);
    // A link and a connection made by other commands on the same folder point at that port.
    create_survey(&data, None);
    let out = sondeo(
        &data,
        &[
            "link",
            "--survey",
            "post-order",
            "--touchpoint",
            "post-purchase",
            "--respondent",
            "ana@example.com",
        ],
        None,
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains(&format!("{base}/r/")), "{stdout}");
    assert!(!stdout.contains(":8787"), "{stdout}");
    let out = sondeo(&data, ADD, Some("shpss_secret"));
    assert!(out.status.success(), "{:?}", text(&out));
    let (listed, _) = text(&sondeo(&data, &["connections", "list"], None));
    assert!(
        listed.contains(&format!("{base}/v1/webhooks/shopify/tienda-sol")),
        "{listed}"
    );
    // The folder (keys, webhook secrets, answers, outbox) and the database are the owner's only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("sondeo.db")), 0o600);
        assert_eq!(mode(&data.join("secrets.json")), 0o600);
        assert_eq!(mode(&data.join("outbox")), 0o700);
    }
    let _ = std::fs::remove_dir_all(data.parent().unwrap());
}

#[test]
fn a_quoted_sender_name_is_accepted_a_unicode_domain_saved_in_punycode_and_a_unicode_local_part_refused(
) {
    let data = data_dir();
    create_survey(&data, None);
    let with_sender = |sender: &'static str| {
        let mut args = ADD.to_vec();
        args[12] = sender;
        args
    };

    let out = sondeo(
        &data,
        &with_sender("\"Tienda, Sol\" <hola@tiendasol.example>"),
        Some("shpss_secret"),
    );
    assert!(out.status.success(), "{:?}", text(&out));
    let out = sondeo(
        &data,
        &with_sender("Tienda Sol <hola@tiendasöl.example>"),
        Some("shpss_secret"),
    );
    assert!(out.status.success(), "{:?}", text(&out));
    let out = sondeo(&data, &["connections", "list"], None);
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains("hola@xn--tiendasl-t4a.example"),
        "the domain is saved as SES sends from it: {stdout}"
    );

    let out = sondeo(
        &data,
        &with_sender("Tienda Sol <josé@tiendasol.example>"),
        Some("shpss_secret"),
    );
    assert!(!out.status.success());
    assert!(text(&out).1.contains("not plain ASCII"), "{:?}", text(&out));
    let _ = std::fs::remove_dir_all(&data);
}
