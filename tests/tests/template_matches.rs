//! `infra/template.yaml` must describe the code in this workspace: every deployed function is a
//! binary crate under `functions/` (and every such crate is deployed), every function that
//! serves routes of `sondeo_http::ROUTES` has one public Lambda function URL (the function's own
//! router dispatches every path, so no API Gateway route table is kept in step), the outputs and
//! `SONDEO_BASE_URL` point at the URL of the function that serves them, and every environment
//! variable a function declares it needs (its crate's `config::VARIABLES`) is set in its
//! environment, secrets only as Secrets Manager ARNs; each function's role grants exactly the
//! actions its code calls, DynamoDB ones only on the partitions it touches; the flood breaker is
//! wired to every public function and its alarm, and reconciles on a schedule.
//!
//! The checks return a list of problems so the drift tests at the bottom can prove, on
//! deliberately broken copies of the template, that each check really fails.

use serde_json::Value as Json;
use serde_yaml::value::{Tag, TaggedValue};
use serde_yaml::Value;
use sondeo_domain::settings::{Presence, Variable};
use sondeo_http::{function_for, Function, ROUTES};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const SERVERLESS_FUNCTION: &str = "AWS::Serverless::Function";
const FUNCTION_URL: &str = "AWS::Lambda::Url";
const LAMBDA_PERMISSION: &str = "AWS::Lambda::Permission";

/// The environment variables a function binary reads, as its crate declares them
/// (`config::VARIABLES`, its own and those shared code reads on its behalf). A binary missing
/// here is reported by the environment check, so a new function cannot go unchecked.
fn declared_variables(binary: &str) -> Option<&'static [Variable]> {
    match binary {
        "collect" => Some(collect::config::VARIABLES),
        "metrics" => Some(metrics::config::VARIABLES),
        "aggregate" => Some(aggregate::config::VARIABLES),
        "breaker" => Some(breaker::config::VARIABLES),
        "webhooks" => Some(webhooks::config::VARIABLES),
        "mail" => Some(mail::config::VARIABLES),
        "alerts" => Some(alerts::config::VARIABLES),
        _ => None,
    }
}

/// The binary that serves a router function: an exhaustive match, so a new `Function` variant
/// does not compile until it is mapped here (and then deployed in the template).
fn binary_for(function: Function) -> &'static str {
    match function {
        Function::Collect => "collect",
        Function::Metrics => "metrics",
        Function::Webhooks => "webhooks",
    }
}

// ---------------------------------------------------------------------------- workspace

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent directory")
        .to_path_buf()
}

fn template_path() -> PathBuf {
    repo_root().join("infra").join("template.yaml")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn canonical(path: &Path) -> PathBuf {
    path.canonicalize()
        .unwrap_or_else(|e| panic!("cannot resolve {}: {e}", path.display()))
}

/// A binary target of a workspace crate under `functions/`.
#[derive(Debug, Clone)]
struct FunctionBinary {
    /// The crate's directory (where its Cargo.toml is).
    crate_dir: PathBuf,
}

/// What the workspace holds: the function binaries (by name) and the crate directories under `functions/`.
#[derive(Debug, Clone)]
struct Workspace {
    root: PathBuf,
    binaries: BTreeMap<String, FunctionBinary>,
    member_dirs: BTreeSet<PathBuf>,
}

/// The workspace as cargo sees it (`cargo metadata --no-deps`), computed once.
fn workspace() -> &'static Workspace {
    static WORKSPACE: OnceLock<Workspace> = OnceLock::new();
    WORKSPACE.get_or_init(|| {
        let root = canonical(&repo_root());
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .args([
                "metadata",
                "--no-deps",
                "--format-version",
                "1",
                "--offline",
            ])
            .current_dir(&root)
            .output()
            .expect("cargo metadata runs");
        assert!(
            out.status.success(),
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let meta: Json = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
        let functions_dir = root.join("functions");
        let mut binaries = BTreeMap::new();
        let mut member_dirs = BTreeSet::new();
        for package in meta["packages"].as_array().into_iter().flatten() {
            let manifest = PathBuf::from(package["manifest_path"].as_str().unwrap_or_default());
            let crate_dir = manifest.parent().map(canonical).unwrap_or_default();
            if !crate_dir.starts_with(&functions_dir) {
                continue;
            }
            member_dirs.insert(crate_dir.clone());
            for target in package["targets"].as_array().into_iter().flatten() {
                let is_bin = target["kind"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|k| k == "bin"));
                if !is_bin {
                    continue;
                }
                binaries.insert(
                    target["name"].as_str().unwrap_or_default().to_string(),
                    FunctionBinary {
                        crate_dir: crate_dir.clone(),
                    },
                );
            }
        }
        Workspace {
            root,
            binaries,
            member_dirs,
        }
    })
}

/// Every directory under `functions/` that holds a Cargo.toml.
fn crate_dirs_under_functions() -> BTreeSet<PathBuf> {
    let dir = repo_root().join("functions");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.join("Cargo.toml").is_file())
        .map(|path| canonical(&path))
        .collect()
}

// ---------------------------------------------------------------------------- template

fn load_template() -> Value {
    serde_yaml::from_str(&read(&template_path())).expect("infra/template.yaml is valid YAML")
}

fn resources(template: &Value) -> impl Iterator<Item = (&str, &Value)> {
    template["Resources"]
        .as_mapping()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.as_str()?, v)))
}

fn resources_of_type<'a>(
    template: &'a Value,
    kind: &'a str,
) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
    resources(template).filter(move |(_, r)| r["Type"].as_str() == Some(kind))
}

/// A CloudFormation intrinsic function in short (`!Ref X`) or long (`{"Ref": X}`) form, as
/// its long name (`Ref`, `Fn::GetAtt`, `Fn::Sub`, ...) and its argument.
fn intrinsic(value: &Value) -> Option<(String, &Value)> {
    match value {
        Value::Tagged(tagged) => {
            let name = tagged.tag.to_string();
            let name = name.trim_start_matches('!');
            let long = if name == "Ref" || name == "Condition" {
                name.to_string()
            } else {
                format!("Fn::{name}")
            };
            Some((long, &tagged.value))
        }
        Value::Mapping(map) if map.len() == 1 => {
            let (key, arg) = map.iter().next()?;
            let key = key.as_str()?;
            (key == "Ref" || key.starts_with("Fn::")).then(|| (key.to_string(), arg))
        }
        _ => None,
    }
}

/// Logical ids referenced by `${Name}` or `${Name.Attribute}` in a `Fn::Sub` string.
fn sub_references(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        rest = &rest[start + 2..];
        let Some(end) = rest.find('}') else { break };
        let inner = &rest[..end];
        if !inner.starts_with('!') && !inner.starts_with("AWS::") {
            names.push(inner.split('.').next().unwrap_or(inner).to_string());
        }
        rest = &rest[end..];
    }
    names
}

/// Every logical id a value refers to through `Ref`, `Fn::GetAtt` or `Fn::Sub`, at any depth.
fn references(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    collect_references(value, &mut out);
    out
}

fn collect_references(value: &Value, out: &mut Vec<String>) {
    if let Some((name, arg)) = intrinsic(value) {
        match (name.as_str(), arg) {
            ("Ref", Value::String(id)) if !id.starts_with("AWS::") => out.push(id.clone()),
            ("Fn::GetAtt", Value::String(path)) => {
                out.push(path.split('.').next().unwrap_or(path).to_string())
            }
            ("Fn::GetAtt", Value::Sequence(parts)) => {
                out.extend(parts.first().and_then(Value::as_str).map(str::to_string))
            }
            ("Fn::Sub", Value::String(text)) => out.extend(sub_references(text)),
            ("Fn::Sub", Value::Sequence(parts)) => {
                // `!Sub [text, {Var: value}]`: the variables are local names, their values may refer.
                let local = parts.get(1).and_then(Value::as_mapping);
                let is_local = |name: &str| local.is_some_and(|m| m.contains_key(name));
                if let Some(text) = parts.first().and_then(Value::as_str) {
                    out.extend(sub_references(text).into_iter().filter(|n| !is_local(n)));
                }
                parts
                    .iter()
                    .skip(1)
                    .for_each(|p| collect_references(p, out));
            }
            (_, arg) => collect_references(arg, out),
        }
        return;
    }
    match value {
        Value::Sequence(items) => items.iter().for_each(|v| collect_references(v, out)),
        Value::Mapping(map) => map.values().for_each(|v| collect_references(v, out)),
        _ => {}
    }
}

/// The template's view of one function: its binary, code location and environment.
#[derive(Debug)]
struct TemplateFunction {
    logical_id: String,
    binary: Option<String>,
    build_method: Option<String>,
    code_uri: Option<String>,
    handler: Option<String>,
    runtime: Option<String>,
    /// Globals.Function.Environment merged with the function's own (SAM merges the maps).
    environment: BTreeSet<String>,
}

fn variable_names(env: &Value) -> impl Iterator<Item = String> + '_ {
    env["Variables"]
        .as_mapping()
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| k.as_str().map(str::to_string))
}

fn template_functions(template: &Value) -> Vec<TemplateFunction> {
    let globals = &template["Globals"]["Function"];
    let text = |v: &Value| v.as_str().map(str::to_string);
    resources_of_type(template, SERVERLESS_FUNCTION)
        .map(|(id, resource)| {
            let props = &resource["Properties"];
            let either = |key: &str| text(&props[key]).or_else(|| text(&globals[key]));
            TemplateFunction {
                logical_id: id.to_string(),
                binary: text(&resource["Metadata"]["BuildProperties"]["Binary"]),
                build_method: text(&resource["Metadata"]["BuildMethod"]),
                code_uri: either("CodeUri"),
                handler: either("Handler"),
                runtime: either("Runtime"),
                environment: variable_names(&globals["Environment"])
                    .chain(variable_names(&props["Environment"]))
                    .collect(),
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------- checks

/// Problems with the functions' code locations and binaries.
fn function_problems(template: &Value, ws: &Workspace) -> Vec<String> {
    let mut problems = Vec::new();
    let template_dir = canonical(&repo_root().join("infra"));
    let mut deployed = BTreeSet::new();
    for f in template_functions(template) {
        let id = &f.logical_id;
        // One workspace build feeds every function: the root Makefile's `build-<LogicalId>`.
        if f.build_method.as_deref() != Some("makefile") {
            problems.push(format!(
                "{id}: Metadata.BuildMethod is {:?}, expected makefile (the workspace Makefile builds every function in one cargo build)",
                f.build_method
            ));
        }
        if f.handler.as_deref() != Some("bootstrap") {
            problems.push(format!(
                "{id}: Handler is {:?}; a custom-runtime function's handler is `bootstrap`",
                f.handler
            ));
        }
        if !f
            .runtime
            .as_deref()
            .is_some_and(|r| r.starts_with("provided."))
        {
            problems.push(format!(
                "{id}: Runtime is {:?}, expected an OS-only runtime such as provided.al2023",
                f.runtime
            ));
        }
        let Some(binary) = f.binary.as_deref() else {
            problems.push(format!(
                "{id}: Metadata.BuildProperties.Binary is missing; it must name a binary under functions/ ({})",
                ws.binaries.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
            continue;
        };
        let Some(found) = ws.binaries.get(binary) else {
            problems.push(format!(
                "{id}: Metadata.BuildProperties.Binary `{binary}` is not a binary of a workspace crate under functions/ (those are: {})",
                ws.binaries.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
            continue;
        };
        deployed.insert(binary.to_string());
        match f.code_uri.as_deref() {
            None => problems.push(format!("{id}: CodeUri is missing")),
            Some(uri) => match template_dir.join(uri).canonicalize() {
                Err(e) => problems.push(format!(
                    "{id}: CodeUri `{uri}` (relative to infra/) does not exist: {e}"
                )),
                Ok(dir) if dir != ws.root => problems.push(format!(
                    "{id}: CodeUri `{uri}` resolves to {}, not the workspace root {} whose Makefile builds binary `{binary}` ({})",
                    dir.display(),
                    ws.root.display(),
                    found.crate_dir.display()
                )),
                Ok(_) => {}
            },
        }
    }
    for (binary, found) in &ws.binaries {
        if !deployed.contains(binary) {
            problems.push(format!(
                "binary `{binary}` ({}) is not deployed by any AWS::Serverless::Function in infra/template.yaml",
                found.crate_dir.display()
            ));
        }
    }
    for dir in crate_dirs_under_functions() {
        if !ws.member_dirs.contains(&dir) {
            problems.push(format!(
                "{} is not a member of the Cargo workspace, so it is neither built nor deployed",
                dir.display()
            ));
        }
    }
    problems
}

/// The logical id of the template function a value refers to (through a Ref, GetAtt or Sub), if any.
fn referenced_function(template: &Value, value: &Value) -> Option<String> {
    let functions = template_functions(template);
    references(value)
        .into_iter()
        .find(|id| functions.iter().any(|f| &f.logical_id == id))
}

/// The binary a template function builds (or a placeholder naming the function without one).
fn binary_of(template: &Value, function_id: &str) -> String {
    template_functions(template)
        .into_iter()
        .find(|f| f.logical_id == function_id)
        .and_then(|f| f.binary)
        .unwrap_or_else(|| format!("<{function_id} without Binary>"))
}

/// A function URL of the template: an `AWS::Lambda::Url` resource, or SAM's `FunctionUrlConfig`
/// on a function (SAM then creates `<Function>Url` and the public-access permissions itself).
#[derive(Debug)]
struct FunctionUrl {
    logical_id: String,
    function_id: String,
    binary: String,
    auth_type: Option<String>,
    /// `BUFFERED` (also when unset) or `RESPONSE_STREAM`.
    invoke_mode: Option<String>,
    cors: bool,
    /// The resource-policy statements come from SAM (FunctionUrlConfig), not from the template.
    permissions_by_sam: bool,
}

/// The binaries that answer through `lambda_http::run_with_streaming_response` (the arm64 smoke
/// test checks each binary's answer is streamed, or not, as listed here).
const STREAMING_BINARIES: &[&str] = &["metrics"];

/// Every function URL of the template, and the URL resources that invoke no function of it.
fn function_urls(template: &Value) -> (Vec<FunctionUrl>, Vec<String>) {
    let text = |v: &Value| v.as_str().map(str::to_string);
    let mut urls = Vec::new();
    let mut problems = Vec::new();
    for (id, resource) in resources_of_type(template, FUNCTION_URL) {
        let props = &resource["Properties"];
        let Some(function_id) = referenced_function(template, &props["TargetFunctionArn"]) else {
            problems.push(format!(
                "{id}: TargetFunctionArn does not refer to a function of this template"
            ));
            continue;
        };
        urls.push(FunctionUrl {
            logical_id: id.to_string(),
            binary: binary_of(template, &function_id),
            function_id,
            auth_type: text(&props["AuthType"]),
            invoke_mode: text(&props["InvokeMode"]),
            cors: !props["Cors"].is_null(),
            permissions_by_sam: false,
        });
    }
    for f in template_functions(template) {
        let config =
            &template["Resources"][f.logical_id.as_str()]["Properties"]["FunctionUrlConfig"];
        if config.is_null() {
            continue;
        }
        urls.push(FunctionUrl {
            logical_id: format!("{}Url", f.logical_id),
            binary: binary_of(template, &f.logical_id),
            function_id: f.logical_id.clone(),
            auth_type: text(&config["AuthType"]),
            invoke_mode: text(&config["InvokeMode"]),
            cors: !config["Cors"].is_null(),
            permissions_by_sam: true,
        });
    }
    (urls, problems)
}

/// API Gateway resources or events: the HTTP front is function URLs, so any of these is a
/// leftover that charges per request and whose routes nothing keeps in step with the router.
fn api_gateway_problems(template: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for (id, resource) in resources(template) {
        let kind = resource["Type"].as_str().unwrap_or_default();
        if kind.starts_with("AWS::ApiGateway")
            || kind == "AWS::Serverless::HttpApi"
            || kind == "AWS::Serverless::Api"
        {
            problems.push(format!(
                "{id} ({kind}): the HTTP front is Lambda function URLs; an API Gateway would charge per request and route apart from sondeo_http::ROUTES"
            ));
        }
    }
    for f in template_functions(template) {
        let events = &template["Resources"][f.logical_id.as_str()]["Properties"]["Events"];
        for (name, event) in events.as_mapping().into_iter().flatten() {
            let kind = event["Type"].as_str().unwrap_or_default();
            if kind == "HttpApi" || kind == "Api" {
                problems.push(format!(
                    "{}: event {} is an API Gateway ({kind}) event; the HTTP front is Lambda function URLs",
                    f.logical_id,
                    name.as_str().unwrap_or("?")
                ));
            }
        }
    }
    problems
}

/// A scalar as text (`true` and `"true"` alike), lower-cased.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.to_ascii_lowercase()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The two resource-policy statements a public (AuthType NONE) function URL needs: since
/// October 2025, `lambda:InvokeFunctionUrl` for anyone when the URL's AuthType is NONE, and
/// `lambda:InvokeFunction` for anyone through a function URL only.
fn public_permission_problems(template: &Value, url: &FunctionUrl) -> Vec<String> {
    let statements: Vec<&Value> = resources_of_type(template, LAMBDA_PERMISSION)
        .map(|(_, p)| &p["Properties"])
        .filter(|p| p["Principal"].as_str() == Some("*"))
        .filter(|p| {
            referenced_function(template, &p["FunctionName"]).as_deref()
                == Some(url.function_id.as_str())
        })
        .collect();
    let has = |action: &str, key: &str, want: &str| {
        statements.iter().any(|p| {
            p["Action"].as_str() == Some(action) && scalar_text(&p[key]).as_deref() == Some(want)
        })
    };
    let mut problems = Vec::new();
    if !has("lambda:InvokeFunctionUrl", "FunctionUrlAuthType", "none") {
        problems.push(format!(
            "{}: no AWS::Lambda::Permission lets Principal \"*\" call lambda:InvokeFunctionUrl on {} with FunctionUrlAuthType NONE, so the public URL answers 403",
            url.logical_id, url.function_id
        ));
    }
    if !has("lambda:InvokeFunction", "InvokedViaFunctionUrl", "true") {
        problems.push(format!(
            "{}: no AWS::Lambda::Permission lets Principal \"*\" call lambda:InvokeFunction on {} with InvokedViaFunctionUrl true; function URLs created since October 2025 answer 403 without it",
            url.logical_id, url.function_id
        ));
    }
    problems
}

/// Problems between the router's functions and the template's function URLs: every function
/// of `sondeo_http::ROUTES` has exactly one public URL (the function routes every path itself),
/// no other function has one, no API Gateway is left, and each URL is public, without CORS
/// settings, and allowed by the function's resource policy.
fn url_problems(template: &Value) -> Vec<String> {
    let mut problems = api_gateway_problems(template);
    let (urls, unresolved) = function_urls(template);
    problems.extend(unresolved);
    let mut served: BTreeMap<&str, (Function, Vec<String>)> = BTreeMap::new();
    for (method, path, function) in ROUTES {
        served
            .entry(binary_for(*function))
            .or_insert((*function, Vec::new()))
            .1
            .push(format!("{method} {path}"));
    }
    for (binary, (function, routes)) in &served {
        let count = urls.iter().filter(|u| u.binary == *binary).count();
        if count == 0 {
            problems.push(format!(
                "{function:?} (binary `{binary}`) serves {}, but no function URL (AWS::Lambda::Url or FunctionUrlConfig) invokes a function building `{binary}`",
                routes.join(", ")
            ));
        } else if count > 1 {
            problems.push(format!(
                "`{binary}` has {count} function URLs; it needs exactly one public address"
            ));
        }
    }
    for url in &urls {
        let id = &url.logical_id;
        if !served.contains_key(url.binary.as_str()) {
            problems.push(format!(
                "{id} makes {} (binary `{}`) public, but it serves no route of sondeo_http::ROUTES",
                url.function_id, url.binary
            ));
        }
        if url.auth_type.as_deref() != Some("NONE") {
            problems.push(format!(
                "{id}: AuthType is {:?}; email clicks, browsers and API clients carry no AWS signature (the code checks tokens and API keys itself), so AuthType must be NONE",
                url.auth_type
            ));
        } else if !url.permissions_by_sam {
            problems.extend(public_permission_problems(template, url));
        }
        let streams = STREAMING_BINARIES.contains(&url.binary.as_str());
        let mode = url.invoke_mode.as_deref().unwrap_or("BUFFERED");
        if streams != (mode == "RESPONSE_STREAM") {
            problems.push(format!(
                "{id}: InvokeMode is {mode}, but `{}` runs lambda_http's {} runtime, so it must be {}",
                url.binary,
                if streams { "streaming" } else { "buffered" },
                if streams { "RESPONSE_STREAM" } else { "BUFFERED" },
            ));
        }
        if url.cors {
            problems.push(format!(
                "{id}: Cors is configured; a function URL's CORS settings replace the headers the code sets for SONDEO_ALLOWED_ORIGINS, so leave Cors out"
            ));
        }
    }
    problems
}

/// The function serving a route of the router.
fn router_function(method: http::Method, path: &str) -> Function {
    function_for(&method, path)
        .unwrap_or_else(|| panic!("sondeo_http::ROUTES has no route for {method} {path}"))
}

/// Problems with the addresses users and the code are given: the outputs (`BaseUrl` for survey
/// links, `ApiUrl` and `MetricsUrl` for the API, `DashboardUrl`) and `SONDEO_BASE_URL`, the base of the links
/// the code mints, must be the function URL of the function that serves them; a function must not
/// refer to its own URL (a circular dependency CloudFormation rejects).
fn address_problems(template: &Value) -> Vec<String> {
    let (urls, _) = function_urls(template);
    let links = router_function(http::Method::GET, "/r/token");
    let api = router_function(http::Method::GET, "/v1/metrics");
    let dashboard = router_function(http::Method::GET, "/dashboard");
    let url_of = |function: Function| {
        urls.iter()
            .find(|u| u.binary == binary_for(function))
            .map(|u| u.logical_id.clone())
    };
    let url_refs = |value: &Value| -> BTreeSet<String> {
        references(value)
            .into_iter()
            .filter(|r| urls.iter().any(|u| &u.logical_id == r))
            .collect()
    };
    let mut problems = Vec::new();
    for (output, function, what) in [
        ("BaseUrl", links, "survey links"),
        ("ApiUrl", api, "sondeo --api"),
        ("MetricsUrl", api, "GET /v1/metrics"),
        ("DashboardUrl", dashboard, "the dashboard"),
    ] {
        let value = &template["Outputs"][output]["Value"];
        if value.is_null() {
            problems.push(format!("output {output} ({what}) is missing"));
            continue;
        }
        let Some(want) = url_of(function) else {
            continue; // reported by url_problems
        };
        let got = url_refs(value);
        if got != BTreeSet::from([want.clone()]) {
            problems.push(format!(
                "output {output} ({what}) must be the function URL {want} of {function:?}, but it refers to {got:?}"
            ));
        }
    }
    let globals = &template["Globals"]["Function"]["Environment"]["Variables"]["SONDEO_BASE_URL"];
    for f in template_functions(template) {
        let own = &template["Resources"][f.logical_id.as_str()]["Properties"]["Environment"]
            ["Variables"]["SONDEO_BASE_URL"];
        let value = if own.is_null() { globals } else { own };
        let got = url_refs(value);
        let own_url = urls
            .iter()
            .find(|u| u.function_id == f.logical_id)
            .map(|u| u.logical_id.clone());
        if let Some(own_url) = own_url.filter(|u| got.contains(u)) {
            problems.push(format!(
                "{}: SONDEO_BASE_URL refers to its own function URL {own_url}, a circular dependency; leave it unset there (the code derives the base URL from the request's Host header)",
                f.logical_id
            ));
        }
        if value.is_null() || f.binary.as_deref() == Some(binary_for(links)) {
            continue; // unset where read: environment check; the link function itself: above
        }
        let Some(want) = url_of(links) else {
            continue; // reported by url_problems
        };
        if got != BTreeSet::from([want.clone()]) {
            problems.push(format!(
                "{}: SONDEO_BASE_URL (the base of the links it mints) must be the function URL {want} of {links:?}, which serves GET /r/{{token}}, but it refers to {got:?}",
                f.logical_id
            ));
        }
    }
    problems
}

// ---------------------------------------------------------------------------- environment

/// Problems with one function's environment (Globals merged in) against the variables it
/// declares: a required variable or secret ARN not set, a secret's value set in plain text
/// (anyone with `lambda:GetFunctionConfiguration` could read it), or a local-mode secret
/// declared without the ARN variable Lambda would read instead.
fn declared_environment_problems(
    id: &str,
    environment: &BTreeSet<String>,
    declared: &[Variable],
) -> Vec<String> {
    let mut problems = Vec::new();
    for var in declared {
        let name = var.name;
        match var.presence {
            Presence::Required | Presence::SecretArn { .. } if !environment.contains(name) => {
                problems.push(format!(
                    "{id}: the function reads environment variable {name} ({}), but neither the function's Environment.Variables nor Globals.Function.Environment.Variables sets it",
                    var.about
                ));
            }
            Presence::LocalSecret { arn } => {
                let arn_declared = declared
                    .iter()
                    .any(|v| v.name == arn && v.presence == Presence::SecretArn { local: name });
                if !arn_declared {
                    problems.push(format!(
                        "{id}: the function reads the local-mode secret {name} but not {arn}, so on Lambda the secret would have to be a plain environment variable"
                    ));
                }
                if environment.contains(name) {
                    problems.push(format!(
                        "{id}: sets {name} in plain text; give it {arn} (a Secrets Manager ARN) instead"
                    ));
                }
            }
            _ => {}
        }
    }
    problems
}

/// Problems with the functions' environments: declared variables not set, secrets set in plain
/// text (a secret any function declares counts, whichever function it is set on).
fn environment_problems(template: &Value, ws: &Workspace) -> Vec<String> {
    let secrets: BTreeMap<&str, &str> = ws
        .binaries
        .keys()
        .filter_map(|b| declared_variables(b))
        .flatten()
        .filter_map(|v| match v.presence {
            Presence::LocalSecret { arn } => Some((v.name, arn)),
            _ => None,
        })
        .collect();
    let mut problems = Vec::new();
    for f in template_functions(template) {
        let id = &f.logical_id;
        let Some(binary) = f.binary.as_deref().filter(|b| ws.binaries.contains_key(*b)) else {
            continue; // reported by function_problems
        };
        let Some(declared) = declared_variables(binary) else {
            problems.push(format!(
                "{id}: no variable list known for binary {binary}; add its crate to tests/Cargo.toml and its config::VARIABLES to declared_variables"
            ));
            continue;
        };
        problems.extend(declared_environment_problems(id, &f.environment, declared));
        for (secret, arn) in &secrets {
            let own = declared.iter().any(|v| v.name == *secret);
            if !own && f.environment.contains(*secret) {
                problems.push(format!(
                    "{id}: sets {secret} in plain text; give it {arn} (a Secrets Manager ARN) instead"
                ));
            }
        }
    }
    problems
}

/// The text of a `!Sub` string (short or long form), if the value is one.
fn sub_text(value: &Value) -> Option<&str> {
    match intrinsic(value)? {
        (name, Value::String(text)) if name == "Fn::Sub" => Some(text.as_str()),
        _ => None,
    }
}

/// The minutes between runs of a `rate(N minute[s])` or `rate(N hour[s])` schedule.
fn rate_minutes(schedule: &str) -> Option<u64> {
    let inner = schedule.strip_prefix("rate(")?.strip_suffix(')')?;
    let (n, unit) = inner.trim().split_once(' ')?;
    let n: u64 = n.parse().ok()?;
    match unit.trim() {
        "minute" | "minutes" => Some(n),
        "hour" | "hours" => Some(n * 60),
        "day" | "days" => Some(n * 1440),
        _ => None,
    }
}

/// The flood breaker's wiring: every public function (one with a function URL) has a flood
/// alarm over its Invocations and Throttles whose ALARM and OK actions invoke the breaker, a
/// permission lets that alarm invoke it, the breaker may cap exactly those functions (its
/// `SONDEO_GUARDED_FUNCTIONS` and its concurrency policy) and read exactly those alarms (its
/// `SONDEO_FLOOD_ALARMS` and `DescribeAlarms` policy), a schedule runs it at least every 10
/// minutes (so a lost alarm event cannot leave a function capped), and its flood concurrency
/// cannot be 0 (which would switch a function off). Miswired, a flood goes unchecked or a
/// function stays capped.
fn flood_breaker_problems(template: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let functions = template_functions(template);
    let Some(breaker) = functions
        .iter()
        .find(|f| f.binary.as_deref() == Some("breaker"))
    else {
        return vec!["no function builds the `breaker` binary".into()];
    };
    let breaker_id = breaker.logical_id.as_str();
    let (urls, _) = function_urls(template);
    let public: BTreeSet<String> = urls.iter().map(|u| u.function_id.clone()).collect();
    let props = &template["Resources"][breaker_id]["Properties"];
    let guarded: BTreeSet<String> =
        references(&props["Environment"]["Variables"]["SONDEO_GUARDED_FUNCTIONS"])
            .into_iter()
            .collect();
    if guarded != public {
        problems.push(format!(
            "{breaker_id}: SONDEO_GUARDED_FUNCTIONS names {guarded:?}, the public functions are {public:?}"
        ));
    }
    let events = props["Events"].as_mapping().into_iter().flatten();
    let every = events
        .filter(|(_, e)| matches!(e["Type"].as_str(), Some("Schedule" | "ScheduleV2")))
        .filter_map(|(_, e)| {
            e["Properties"]["Schedule"]
                .as_str()
                .or_else(|| e["Properties"]["ScheduleExpression"].as_str())
                .and_then(rate_minutes)
        })
        .min();
    if every.is_none_or(|m| m > 10) {
        problems.push(format!(
            "{breaker_id}: no schedule runs it at least every 10 minutes (found: {every:?}); a lost OK would leave a function capped"
        ));
    }
    let flood_concurrency =
        references(&props["Environment"]["Variables"]["SONDEO_FLOOD_CONCURRENCY"]);
    let at_least_one = flood_concurrency.iter().all(|p| {
        let param = &template["Parameters"][p.as_str()];
        param["MinValue"].as_u64().is_some_and(|m| m >= 1)
            && param["Default"].as_u64().is_some_and(|d| d >= 1)
    });
    if flood_concurrency.is_empty() || !at_least_one {
        problems.push(format!(
            "{breaker_id}: SONDEO_FLOOD_CONCURRENCY must be a parameter with MinValue and Default >= 1 (FloodConcurrency), not {flood_concurrency:?}: 0 switches the function off"
        ));
    }
    let listed: BTreeSet<&str> =
        sub_text(&props["Environment"]["Variables"]["SONDEO_FLOOD_ALARMS"])
            .map(|t| t.split(',').map(str::trim).collect())
            .unwrap_or_default();
    let mut describable = BTreeSet::new();
    for policy in props["Policies"].as_sequence().into_iter().flatten() {
        for statement in policy["Statement"].as_sequence().into_iter().flatten() {
            if statement["Action"].as_str() == Some("cloudwatch:DescribeAlarms")
                || statement["Action"].as_sequence().is_some_and(|a| {
                    a.iter()
                        .any(|x| x.as_str() == Some("cloudwatch:DescribeAlarms"))
                })
            {
                let resources = &statement["Resource"];
                let items: Vec<&Value> = match resources.as_sequence() {
                    Some(seq) => seq.iter().collect(),
                    None => vec![resources],
                };
                describable.extend(items.into_iter().filter_map(sub_text));
            }
        }
    }
    for action in [
        "lambda:GetFunctionConcurrency",
        "lambda:PutFunctionConcurrency",
        "lambda:DeleteFunctionConcurrency",
    ] {
        let mut allowed = BTreeSet::new();
        for policy in props["Policies"].as_sequence().into_iter().flatten() {
            for statement in policy["Statement"].as_sequence().into_iter().flatten() {
                let actions = &statement["Action"];
                let grants = actions.as_str() == Some(action)
                    || actions
                        .as_sequence()
                        .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(action)));
                if grants && statement["Effect"].as_str() == Some("Allow") {
                    allowed.extend(references(&statement["Resource"]));
                }
            }
        }
        if allowed != public {
            problems.push(format!(
                "{breaker_id}: {action} is allowed on {allowed:?}, the public functions are {public:?}"
            ));
        }
    }
    for function in &public {
        let alarm = resources_of_type(template, "AWS::CloudWatch::Alarm").find(|(_, a)| {
            a["Properties"]["Metrics"]
                .as_sequence()
                .into_iter()
                .flatten()
                .any(|m| references(&m["MetricStat"]).contains(function))
        });
        let Some((alarm_id, alarm)) = alarm else {
            problems.push(format!("{function}: no flood alarm watches it"));
            continue;
        };
        let aprops = &alarm["Properties"];
        match sub_text(&aprops["AlarmName"]) {
            Some(name) => {
                if !listed.contains(name) {
                    problems.push(format!(
                        "{alarm_id}: its AlarmName {name:?} is not in {breaker_id}'s SONDEO_FLOOD_ALARMS {listed:?}"
                    ));
                }
                if !describable
                    .iter()
                    .any(|arn| arn.ends_with(&format!(":alarm:{name}")))
                {
                    problems.push(format!(
                        "{alarm_id}: {breaker_id} may not cloudwatch:DescribeAlarms it ({describable:?})"
                    ));
                }
            }
            None => problems.push(format!(
                "{alarm_id}: AlarmName must be a !Sub name the breaker can list (a Ref would be circular)"
            )),
        }
        let metric_names: BTreeSet<&str> = aprops["Metrics"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter(|m| references(&m["MetricStat"]).contains(function))
            .filter_map(|m| m["MetricStat"]["Metric"]["MetricName"].as_str())
            .collect();
        if !metric_names.contains("Invocations") || !metric_names.contains("Throttles") {
            problems.push(format!(
                "{alarm_id}: watches {metric_names:?} of {function}; it needs Invocations and Throttles, or it returns to OK while the breaker turns the flood away"
            ));
        }
        for key in ["AlarmActions", "OKActions"] {
            if !references(&aprops[key]).iter().any(|r| r == breaker_id) {
                problems.push(format!("{alarm_id}: {key} do not invoke {breaker_id}"));
            }
        }
        let permitted = resources_of_type(template, LAMBDA_PERMISSION).any(|(_, p)| {
            let p = &p["Properties"];
            references(&p["FunctionName"])
                .iter()
                .any(|r| r == breaker_id)
                && p["Principal"].as_str() == Some("lambda.alarms.cloudwatch.amazonaws.com")
                && p["Action"].as_str() == Some("lambda:InvokeFunction")
                && references(&p["SourceArn"]).iter().any(|r| r == alarm_id)
        });
        if !permitted {
            problems.push(format!(
                "{alarm_id}: no AWS::Lambda::Permission lets it invoke {breaker_id} (principal lambda.alarms.cloudwatch.amazonaws.com, SourceArn the alarm)"
            ));
        }
    }
    problems
}

// ---------------------------------------------------------------------------- permissions

/// One permission a function's role grants: an action on a resource (a logical id, or the text
/// of a `!Sub` ARN), for DynamoDB on the partitions matching one `dynamodb:LeadingKeys` pattern.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Grant {
    action: String,
    resource: String,
    leading_key: Option<String>,
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} on {}", self.action, self.resource)?;
        match &self.leading_key {
            Some(k) => write!(f, " (partition {k:?})"),
            None => Ok(()),
        }
    }
}

/// The grants each function's code needs, and no more: the SDK calls it makes (read from
/// `shared/aws/src/dynamo.rs`, `sqs.rs`, `secrets.rs`, `lambda.rs`, `breaker.rs` and each
/// function's `main.rs`) on the resources and partitions it touches. Items: `SURVEY`/<id>,
/// `R#<survey>`/<digest> (response records, personal data), `C#<survey>`/<day>#<touchpoint>,
/// `REJECTED`/<message id>; `warm-up` is the key the init warm-up reads and nothing writes.
fn minimal_grants(binary: &str) -> Option<BTreeSet<Grant>> {
    type Spec = (&'static str, &'static str, &'static [&'static str]);
    const TABLE: &str = "Table";
    const QUEUE: &str = "ResponseQueue";
    const ALERT_QUEUE: &str = "AlertQueue";
    const COLLECT_ALARM: &str =
        "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:${AWS::StackName}-collect-flood";
    const METRICS_ALARM: &str =
        "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:${AWS::StackName}-metrics-flood";
    const WEBHOOKS_ALARM: &str =
        "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:${AWS::StackName}-webhooks-flood";
    const SCHEDULES: &str =
        "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/${InvitationScheduleGroup}/sondeo-*";
    const SENDER: &str =
        "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/${SenderIdentity}";
    const CONFIGURATION_SET: &str = "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:configuration-set/${MailConfigurationSet}";
    let specs: &[Spec] = match binary {
        "collect" => &[
            // get_survey (through the cache); the warm-up GetItem.
            ("dynamodb:GetItem", TABLE, &["SURVEY", "warm-up"]),
            // suppress (an unsubscribe link).
            ("dynamodb:PutItem", TABLE, &["SUPPRESSED"]),
            // SqsQueue::send; the warm-up's GetQueueAttributes.
            ("sqs:SendMessage", QUEUE, &[]),
            ("sqs:GetQueueAttributes", QUEUE, &[]),
            ("secretsmanager:GetSecretValue", "LinkKeysSecret", &[]),
        ],
        "metrics" => &[
            ("dynamodb:GetItem", TABLE, &["SURVEY", "warm-up"]),
            // create_survey; suppress.
            ("dynamodb:PutItem", TABLE, &["SURVEY", "SUPPRESSED"]),
            // list_surveys; read_counters; list_suppressed.
            ("dynamodb:Query", TABLE, &["SURVEY", "C#*", "SUPPRESSED"]),
            // unsuppress.
            ("dynamodb:DeleteItem", TABLE, &["SUPPRESSED"]),
            // suppressed_among (a bulk call's recipients).
            ("dynamodb:BatchGetItem", TABLE, &["SUPPRESSED"]),
            // put_connection.
            ("dynamodb:PutItem", TABLE, &["CONN"]),
            // list_connections (then list_invitations reads each INV#<connection> by time).
            ("dynamodb:Query", TABLE, &["CONN"]),
            // delete_connection.
            ("dynamodb:DeleteItem", TABLE, &["CONN"]),
            // responses_page: the by_time index, then long answers' detail items.
            ("dynamodb:Query", "${Table.Arn}/index/by_time", &["R#*"]),
            ("dynamodb:BatchGetItem", TABLE, &["R#*"]),
            // list_invitations: each INV#<connection>, newest first.
            ("dynamodb:Query", "${Table.Arn}/index/by_time", &["INV#*"]),
            // Alert rules: put_alert_rule, list_alert_rules, delete_alert_rule.
            ("dynamodb:PutItem", TABLE, &["ALERTRULE"]),
            ("dynamodb:Query", TABLE, &["ALERTRULE"]),
            ("dynamodb:DeleteItem", TABLE, &["ALERTRULE"]),
            // POST /v1/imports: SqsQueue::enqueue_batch (SendMessageBatch).
            ("sqs:SendMessage", QUEUE, &[]),
            ("secretsmanager:GetSecretValue", "LinkKeysSecret", &[]),
            ("secretsmanager:GetSecretValue", "ApiKeysSecret", &[]),
        ],
        "aggregate" => &[
            // load_records.
            ("dynamodb:BatchGetItem", TABLE, &["R#*"]),
            // commit's record Puts (TransactWriteItems is authorised per action); keep_rejected.
            ("dynamodb:PutItem", TABLE, &["R#*", "REJECTED"]),
            // commit's detail items of large answers.
            ("dynamodb:BatchWriteItem", TABLE, &["R#*"]),
            // commit's counter Updates, and record Updates that keep the answer.
            ("dynamodb:UpdateItem", TABLE, &["C#*", "R#*"]),
            // Alerts: list_alert_rules (cached), SqsAlertQueue::enqueue_alert.
            ("dynamodb:Query", TABLE, &["ALERTRULE"]),
            ("sqs:SendMessage", ALERT_QUEUE, &[]),
            // The SQS event source mapping's documented minimum.
            ("sqs:ReceiveMessage", QUEUE, &[]),
            ("sqs:DeleteMessage", QUEUE, &[]),
            ("sqs:GetQueueAttributes", QUEUE, &[]),
        ],
        "breaker" => &[
            ("lambda:GetFunctionConcurrency", "CollectFunction", &[]),
            ("lambda:GetFunctionConcurrency", "MetricsFunction", &[]),
            ("lambda:GetFunctionConcurrency", "WebhooksFunction", &[]),
            ("lambda:PutFunctionConcurrency", "CollectFunction", &[]),
            ("lambda:PutFunctionConcurrency", "MetricsFunction", &[]),
            ("lambda:PutFunctionConcurrency", "WebhooksFunction", &[]),
            ("lambda:DeleteFunctionConcurrency", "CollectFunction", &[]),
            ("lambda:DeleteFunctionConcurrency", "MetricsFunction", &[]),
            ("lambda:DeleteFunctionConcurrency", "WebhooksFunction", &[]),
            ("cloudwatch:DescribeAlarms", COLLECT_ALARM, &[]),
            ("cloudwatch:DescribeAlarms", METRICS_ALARM, &[]),
            ("cloudwatch:DescribeAlarms", WEBHOOKS_ALARM, &[]),
        ],
        "webhooks" => &[
            // get_connection; get_survey; the warm-up's GetItem; get_invitation.
            (
                "dynamodb:GetItem",
                TABLE,
                &["CONN", "SURVEY", "warm-up", "INV#*"],
            ),
            // create_invitation, replace_invitation; claim_contact.
            ("dynamodb:PutItem", TABLE, &["INV#*", "CONTACT#*"]),
            // suppressed_among (the order's address).
            ("dynamodb:BatchGetItem", TABLE, &["SUPPRESSED"]),
            // EventBridgeScheduler::schedule, with the role the schedule runs as.
            ("scheduler:CreateSchedule", SCHEDULES, &[]),
            ("iam:PassRole", "SchedulerRole", &[]),
        ],
        "mail" => &[
            // get_invitation; get_connection; get_survey.
            ("dynamodb:GetItem", TABLE, &["INV#*", "CONN", "SURVEY"]),
            // replace_invitation; suppress (bounces and complaints).
            ("dynamodb:PutItem", TABLE, &["INV#*", "SUPPRESSED"]),
            // suppressed_among (before each send).
            ("dynamodb:BatchGetItem", TABLE, &["SUPPRESSED"]),
            // release_contact (a failed invitation's frequency-cap claim).
            ("dynamodb:DeleteItem", TABLE, &["CONTACT#*"]),
            // SesMailer::send_raw: SESv2 SendEmail (raw content).
            ("ses:SendEmail", SENDER, &[]),
            ("ses:SendEmail", CONFIGURATION_SET, &[]),
            ("ses:SendRawEmail", SENDER, &[]),
            ("ses:SendRawEmail", CONFIGURATION_SET, &[]),
            ("secretsmanager:GetSecretValue", "LinkKeysSecret", &[]),
        ],
        "alerts" => &[
            // get_alert_rule.
            ("dynamodb:GetItem", TABLE, &["ALERTRULE"]),
            // claim_delivery; record_delivery.
            ("dynamodb:UpdateItem", TABLE, &["ALERTLOG#*"]),
            ("dynamodb:PutItem", TABLE, &["ALERTLOG#*"]),
            // Later attempts back on the queue; the event source mapping's minimum.
            ("sqs:SendMessage", ALERT_QUEUE, &[]),
            ("sqs:ReceiveMessage", ALERT_QUEUE, &[]),
            ("sqs:DeleteMessage", ALERT_QUEUE, &[]),
            ("sqs:GetQueueAttributes", ALERT_QUEUE, &[]),
        ],
        _ => return None,
    };
    let mut grants = BTreeSet::new();
    for (action, resource, keys) in specs {
        let grant = |leading_key: Option<String>| Grant {
            action: action.to_string(),
            resource: resource.to_string(),
            leading_key,
        };
        if keys.is_empty() {
            grants.insert(grant(None));
        }
        grants.extend(keys.iter().map(|k| grant(Some(k.to_string()))));
    }
    Some(grants)
}

/// A resource of a policy statement as a name: the logical id it refers to, or its ARN text.
fn resource_name(value: &Value) -> String {
    if let Some(text) = sub_text(value) {
        return text.to_string();
    }
    if intrinsic(value).is_some() {
        return references(value)
            .into_iter()
            .next()
            .unwrap_or_else(|| format!("{value:?}"));
    }
    value
        .as_str()
        .map_or_else(|| format!("{value:?}"), str::to_string)
}

/// The `dynamodb:LeadingKeys` patterns a statement is limited to, if it is limited (a
/// `ForAllValues:StringEquals` or `ForAllValues:StringLike` condition: every key of the request
/// must match one; `ForAnyValue` would let any other key through alongside one that matches).
fn leading_keys(statement: &Value) -> Option<Vec<String>> {
    let condition = statement["Condition"].as_mapping()?;
    let mut found = None;
    for (operator, keys) in condition {
        let operator = operator.as_str()?;
        let values = &keys["dynamodb:LeadingKeys"];
        if values.is_null() {
            continue;
        }
        if operator != "ForAllValues:StringEquals" && operator != "ForAllValues:StringLike" {
            return None;
        }
        let list: Vec<String> = match values.as_sequence() {
            Some(seq) => seq
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            None => values.as_str().map(String::from).into_iter().collect(),
        };
        found = Some(list).filter(|l: &Vec<String>| !l.is_empty());
    }
    found
}

/// The grants of one function's inline policies, and the problems found reading them: a policy
/// that is not an inline statement list (a managed policy or a SAM policy template grants what
/// nobody here reviewed), `NotAction`/`NotResource`, and any DynamoDB statement without a
/// `dynamodb:LeadingKeys` condition (it would reach every item of the table).
fn granted(template: &Value, function_id: &str) -> (BTreeSet<Grant>, Vec<String>) {
    let props = &template["Resources"][function_id]["Properties"];
    let mut grants = BTreeSet::new();
    let mut problems = Vec::new();
    if !props["Role"].is_null() {
        problems.push(format!(
            "{function_id}: uses a Role defined elsewhere; its permissions cannot be checked"
        ));
    }
    for policy in props["Policies"].as_sequence().into_iter().flatten() {
        let Some(statements) = policy["Statement"].as_sequence() else {
            problems.push(format!(
                "{function_id}: policy {policy:?} is not an inline statement list"
            ));
            continue;
        };
        for statement in statements {
            let sid = statement["Sid"].as_str().unwrap_or("(no Sid)");
            if !statement["NotAction"].is_null() || !statement["NotResource"].is_null() {
                problems.push(format!(
                    "{function_id}: statement {sid} uses NotAction/NotResource"
                ));
            }
            if statement["Effect"].as_str() != Some("Allow") {
                continue;
            }
            let actions: Vec<String> = match statement["Action"].as_sequence() {
                Some(seq) => seq
                    .iter()
                    .filter_map(|a| a.as_str().map(String::from))
                    .collect(),
                None => statement["Action"]
                    .as_str()
                    .map(String::from)
                    .into_iter()
                    .collect(),
            };
            let resources: Vec<String> = match statement["Resource"].as_sequence() {
                Some(seq) => seq.iter().map(resource_name).collect(),
                None => vec![resource_name(&statement["Resource"])],
            };
            let keys = leading_keys(statement);
            for action in &actions {
                let partitions: Vec<Option<String>> = if action.starts_with("dynamodb:") {
                    match &keys {
                        Some(keys) => keys.iter().cloned().map(Some).collect(),
                        None => {
                            problems.push(format!(
                                "{function_id}: statement {sid} allows {action} without a ForAllValues dynamodb:LeadingKeys condition, so on every item of the table"
                            ));
                            vec![Some("*".to_string())]
                        }
                    }
                } else {
                    vec![None]
                };
                for resource in &resources {
                    for key in &partitions {
                        grants.insert(Grant {
                            action: action.clone(),
                            resource: resource.clone(),
                            leading_key: key.clone(),
                        });
                    }
                }
            }
        }
    }
    (grants, problems)
}

/// Problems with the functions' permissions: each function's role must grant exactly its
/// [`minimal_grants`]; an extra action, resource or partition is a problem, and so is a missing
/// one (the code would be refused in production).
fn permission_problems(template: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for function in template_functions(template) {
        let id = &function.logical_id;
        let binary = function.binary.as_deref().unwrap_or("");
        let Some(minimal) = minimal_grants(binary) else {
            problems.push(format!(
                "{id}: binary {binary:?} has no minimal grant list in minimal_grants"
            ));
            continue;
        };
        let (grants, found) = granted(template, id);
        problems.extend(found);
        for extra in grants.difference(&minimal) {
            problems.push(format!("{id}: allows {extra}, beyond what {binary} calls"));
        }
        for missing in minimal.difference(&grants) {
            problems.push(format!("{id}: lacks {missing}, which {binary} calls"));
        }
    }
    problems
}

/// The aggregation-lag alarm must fire when the oldest queued response is 15 minutes old (the
/// README's figure), give or take one 5-minute datapoint: threshold 900 s, one breaching period.
fn lag_alarm_problems(template: &Value) -> Vec<String> {
    let alarm = &template["Resources"]["AggregationLagAlarm"]["Properties"];
    let period = alarm["Period"].as_u64().unwrap_or(0);
    let needed = alarm["DatapointsToAlarm"]
        .as_u64()
        .or_else(|| alarm["EvaluationPeriods"].as_u64())
        .unwrap_or(0);
    let threshold = alarm["Threshold"].as_u64();
    let mut problems = Vec::new();
    if alarm["MetricName"].as_str() != Some("ApproximateAgeOfOldestMessage") {
        problems.push("AggregationLagAlarm: does not watch ApproximateAgeOfOldestMessage".into());
    }
    if threshold != Some(900) {
        problems.push(format!(
            "AggregationLagAlarm: Threshold {threshold:?} s, the README says 15 minutes (900)"
        ));
    }
    if period == 0 || needed == 0 || period * needed > 300 {
        problems.push(format!(
            "AggregationLagAlarm: needs {needed} breaching periods of {period} s, so it fires up to {} minutes after the 15 the README says",
            (period * needed) / 60
        ));
    }
    problems
}

fn assert_no_problems(what: &str, problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "infra/template.yaml does not match the workspace ({what}):\n  - {}",
        problems.join("\n  - ")
    );
}

// ---------------------------------------------------------------------------- tests

#[test]
fn every_template_function_builds_a_workspace_function_binary_and_every_function_crate_is_deployed()
{
    let ws = workspace();
    assert!(
        !ws.binaries.is_empty(),
        "cargo metadata found no binary under functions/"
    );
    assert_no_problems("functions", function_problems(&load_template(), ws));
}

#[test]
fn every_router_function_has_one_public_function_url_and_no_api_gateway_is_left() {
    assert_no_problems("function URLs", url_problems(&load_template()));
}

#[test]
fn links_outputs_and_base_urls_point_at_the_function_url_that_serves_them() {
    assert_no_problems("addresses", address_problems(&load_template()));
}

#[test]
fn every_environment_variable_a_function_reads_is_set_in_its_template_environment() {
    assert_no_problems(
        "environment",
        environment_problems(&load_template(), workspace()),
    );
}

#[test]
fn each_function_declares_the_variables_it_and_shared_code_read() {
    // Guards the declarations: if a list were empty, the environment test would pass vacuously.
    let ws = workspace();
    for binary in ws.binaries.keys() {
        assert!(
            declared_variables(binary).is_some(),
            "binary `{binary}` under functions/ has no VARIABLES in declared_variables"
        );
    }
    let names = |binary: &str| -> BTreeMap<&'static str, Presence> {
        declared_variables(binary)
            .unwrap_or_else(|| panic!("no variables declared for `{binary}`"))
            .iter()
            .map(|v| (v.name, v.presence))
            .collect()
    };
    let required = |binary: &str, var: &str| {
        let declared = names(binary);
        assert!(
            matches!(
                declared.get(var),
                Some(Presence::Required | Presence::SecretArn { .. })
            ),
            "{binary} needs {var}; declared {declared:?}"
        );
    };
    let optional = |binary: &str, var: &str| {
        let declared = names(binary);
        assert_eq!(
            declared.get(var),
            Some(&Presence::Optional),
            "{binary} may read {var}; declared {declared:?}"
        );
    };
    for var in [
        "SONDEO_TABLE",
        "SONDEO_QUEUE_URL",
        "SONDEO_LINK_KEYS_SECRET_ARN",
    ] {
        required("collect", var);
    }
    for var in ["SONDEO_ALLOWED_ORIGINS", "SONDEO_WARM_UP"] {
        optional("collect", var);
    }
    for var in [
        "SONDEO_TABLE",
        "SONDEO_API_KEYS_SECRET_ARN",
        "SONDEO_LINK_KEYS_SECRET_ARN",
    ] {
        required("metrics", var);
    }
    for var in ["SONDEO_BASE_URL", "SONDEO_WARM_UP", "SONDEO_QUEUE_URL"] {
        optional("metrics", var);
    }
    required("aggregate", "SONDEO_TABLE");
    required("breaker", "SONDEO_GUARDED_FUNCTIONS");
    required("breaker", "SONDEO_FLOOD_ALARMS");
    required("breaker", "SONDEO_FLOOD_CONCURRENCY");
    optional("breaker", "SONDEO_MAX_CONCURRENCY");
    // Read by shared code on every function's behalf: the TLS roots switch.
    for binary in ws.binaries.keys() {
        for var in ["SSL_CERT_FILE", "SSL_CERT_DIR"] {
            optional(binary, var);
        }
    }
}

// ------------------------------------------------- drift: each check fails on a broken template

fn tagged(tag: &str, text: &str) -> Value {
    Value::Tagged(Box::new(TaggedValue {
        tag: Tag::new(tag),
        value: Value::String(text.to_string()),
    }))
}

fn sub(text: &str) -> Value {
    tagged("Sub", text)
}

fn get_att(path: &str) -> Value {
    tagged("GetAtt", path)
}

fn reference(id: &str) -> Value {
    tagged("Ref", id)
}

fn resource_mut<'a>(template: &'a mut Value, id: &str) -> &'a mut Value {
    template["Resources"]
        .get_mut(id)
        .unwrap_or_else(|| panic!("template has no resource {id}"))
}

fn mentions(problems: &[String], words: &[&str]) -> bool {
    problems.iter().any(|p| words.iter().all(|w| p.contains(w)))
}

#[test]
fn a_binary_that_is_not_a_workspace_function_is_reported() {
    let mut template = load_template();
    resource_mut(&mut template, "AggregateFunction")["Metadata"]["BuildProperties"]["Binary"] =
        Value::String("aggregator".into());
    let problems = function_problems(&template, workspace());
    assert!(
        mentions(&problems, &["AggregateFunction", "aggregator"]),
        "{problems:?}"
    );
    assert!(
        mentions(&problems, &["`aggregate`", "not deployed"]),
        "{problems:?}"
    );
}

#[test]
fn a_code_uri_outside_the_workspace_is_reported() {
    let mut template = load_template();
    resource_mut(&mut template, "CollectFunction")["Properties"]["CodeUri"] =
        Value::String("../shared".into());
    let problems = function_problems(&template, workspace());
    assert!(
        mentions(&problems, &["CollectFunction", "CodeUri"]),
        "{problems:?}"
    );
}

#[test]
fn a_router_function_without_a_function_url_is_reported() {
    let mut template = load_template();
    let removed = template["Resources"]
        .as_mapping_mut()
        .and_then(|m| m.remove("MetricsFunctionUrl"));
    assert!(removed.is_some(), "the template has a MetricsFunctionUrl");
    let problems = url_problems(&template);
    assert!(
        mentions(
            &problems,
            &["Metrics", "`metrics`", "GET /v1/metrics", "no function URL"]
        ),
        "{problems:?}"
    );
}

#[test]
fn a_function_url_on_the_wrong_function_is_reported() {
    let mut template = load_template();
    resource_mut(&mut template, "CollectFunctionUrl")["Properties"]["TargetFunctionArn"] =
        get_att("AggregateFunction.Arn");
    let problems = url_problems(&template);
    assert!(
        mentions(
            &problems,
            &["CollectFunctionUrl", "`aggregate`", "serves no route"]
        ),
        "{problems:?}"
    );
    assert!(
        mentions(&problems, &["Collect", "GET /r/{token}", "no function URL"]),
        "{problems:?}"
    );
}

#[test]
fn a_function_url_with_iam_auth_or_cors_settings_is_reported() {
    let mut template = load_template();
    let props = &mut resource_mut(&mut template, "CollectFunctionUrl")["Properties"];
    props["AuthType"] = Value::String("AWS_IAM".into());
    if let Some(map) = props.as_mapping_mut() {
        map.insert(
            Value::String("Cors".into()),
            serde_yaml::from_str("{AllowOrigins: ['*']}").unwrap(),
        );
    }
    let problems = url_problems(&template);
    assert!(
        mentions(&problems, &["CollectFunctionUrl", "AWS_IAM", "NONE"]),
        "{problems:?}"
    );
    assert!(
        mentions(&problems, &["CollectFunctionUrl", "Cors"]),
        "{problems:?}"
    );
}

#[test]
fn a_function_url_whose_invoke_mode_does_not_match_its_runtime_is_reported() {
    let mut template = load_template();
    resource_mut(&mut template, "MetricsFunctionUrl")["Properties"]["InvokeMode"] =
        Value::String("BUFFERED".into());
    resource_mut(&mut template, "CollectFunctionUrl")["Properties"]["InvokeMode"] =
        Value::String("RESPONSE_STREAM".into());
    let problems = url_problems(&template);
    assert!(
        mentions(
            &problems,
            &[
                "MetricsFunctionUrl",
                "BUFFERED",
                "streaming",
                "RESPONSE_STREAM"
            ]
        ),
        "{problems:?}"
    );
    assert!(
        mentions(
            &problems,
            &["CollectFunctionUrl", "RESPONSE_STREAM", "buffered"]
        ),
        "{problems:?}"
    );
}

#[test]
fn a_public_url_missing_either_resource_policy_statement_is_reported() {
    for (removed_id, words) in [
        (
            "CollectUrlPublicAccess",
            ["CollectFunctionUrl", "lambda:InvokeFunctionUrl"],
        ),
        (
            "CollectUrlInvokeAccess",
            ["CollectFunctionUrl", "InvokedViaFunctionUrl"],
        ),
    ] {
        let mut template = load_template();
        let removed = template["Resources"]
            .as_mapping_mut()
            .and_then(|m| m.remove(removed_id));
        assert!(removed.is_some(), "the template has a {removed_id}");
        let problems = url_problems(&template);
        assert!(mentions(&problems, &words), "{removed_id}: {problems:?}");
    }
    // A statement for the wrong function does not count.
    let mut template = load_template();
    resource_mut(&mut template, "MetricsUrlInvokeAccess")["Properties"]["FunctionName"] =
        reference("AggregateFunction");
    let problems = url_problems(&template);
    assert!(
        mentions(&problems, &["MetricsFunctionUrl", "InvokedViaFunctionUrl"]),
        "{problems:?}"
    );
}

#[test]
fn an_api_gateway_left_in_the_template_is_reported() {
    let mut template = load_template();
    if let Some(resources) = template["Resources"].as_mapping_mut() {
        resources.insert(
            Value::String("HttpApi".into()),
            serde_yaml::from_str(
                "{Type: 'AWS::ApiGatewayV2::Api', Properties: {ProtocolType: HTTP}}",
            )
            .unwrap(),
        );
    }
    if let Some(props) =
        resource_mut(&mut template, "MetricsFunction")["Properties"].as_mapping_mut()
    {
        props.insert(
            Value::String("Events".into()),
            serde_yaml::from_str(
                "{Metrics: {Type: HttpApi, Properties: {Method: GET, Path: /v1/metrics}}}",
            )
            .unwrap(),
        );
    }
    let problems = url_problems(&template);
    assert!(
        mentions(&problems, &["HttpApi", "AWS::ApiGatewayV2::Api"]),
        "{problems:?}"
    );
    assert!(
        mentions(&problems, &["MetricsFunction", "Metrics", "HttpApi"]),
        "{problems:?}"
    );
}

#[test]
fn sam_function_url_config_counts_as_a_function_url_with_its_own_permissions() {
    // SAM's FunctionUrlConfig creates `<Function>Url` and both public-access statements itself.
    let mut template = load_template();
    if let Some(resources) = template["Resources"].as_mapping_mut() {
        for id in [
            "CollectFunctionUrl",
            "CollectUrlPublicAccess",
            "CollectUrlInvokeAccess",
        ] {
            assert!(resources.remove(id).is_some(), "the template has a {id}");
        }
    }
    if let Some(map) = resource_mut(&mut template, "CollectFunction")["Properties"].as_mapping_mut()
    {
        map.insert(
            Value::String("FunctionUrlConfig".into()),
            serde_yaml::from_str("{AuthType: NONE}").unwrap(),
        );
    }
    assert_no_problems("SAM function URL", url_problems(&template));
    assert_no_problems("SAM function URL", address_problems(&template));
    resource_mut(&mut template, "CollectFunction")["Properties"]["FunctionUrlConfig"]["Cors"] =
        serde_yaml::from_str("{AllowOrigins: ['*']}").unwrap();
    let problems = url_problems(&template);
    assert!(
        mentions(&problems, &["CollectFunctionUrl", "Cors"]),
        "{problems:?}"
    );
}

#[test]
fn a_minted_link_base_on_the_wrong_url_is_reported() {
    // Links minted by the metrics function on its own URL would answer 404.
    let mut template = load_template();
    resource_mut(&mut template, "MetricsFunction")["Properties"]["Environment"]["Variables"]
        ["SONDEO_BASE_URL"] = get_att("MetricsFunctionUrl.FunctionUrl");
    let problems = address_problems(&template);
    assert!(
        mentions(
            &problems,
            &[
                "MetricsFunction",
                "SONDEO_BASE_URL",
                "CollectFunctionUrl",
                "MetricsFunctionUrl"
            ]
        ),
        "{problems:?}"
    );
    assert!(
        mentions(&problems, &["MetricsFunction", "circular"]),
        "{problems:?}"
    );
}

#[test]
fn a_function_referring_to_its_own_url_is_reported_as_circular() {
    let mut template = load_template();
    resource_mut(&mut template, "CollectFunction")["Properties"]["Environment"]["Variables"]
        ["SONDEO_BASE_URL"] = get_att("CollectFunctionUrl.FunctionUrl");
    let problems = address_problems(&template);
    assert!(
        mentions(
            &problems,
            &["CollectFunction", "CollectFunctionUrl", "circular"]
        ),
        "{problems:?}"
    );
}

#[test]
fn an_output_on_the_wrong_function_url_is_reported() {
    let mut template = load_template();
    template["Outputs"]["BaseUrl"]["Value"] = sub("${MetricsFunctionUrl.FunctionUrl}");
    template["Outputs"]["ApiUrl"]["Value"] = sub("${CollectFunctionUrl.FunctionUrl}");
    let problems = address_problems(&template);
    assert!(
        mentions(
            &problems,
            &["BaseUrl", "CollectFunctionUrl", "MetricsFunctionUrl"]
        ),
        "{problems:?}"
    );
    assert!(
        mentions(
            &problems,
            &["ApiUrl", "MetricsFunctionUrl", "CollectFunctionUrl"]
        ),
        "{problems:?}"
    );
}

#[test]
fn a_missing_environment_variable_is_reported() {
    let mut template = load_template();
    let removed = resource_mut(&mut template, "CollectFunction")["Properties"]["Environment"]
        ["Variables"]
        .as_mapping_mut()
        .and_then(|m| m.remove("SONDEO_QUEUE_URL"));
    assert!(
        removed.is_some(),
        "collect's environment has SONDEO_QUEUE_URL"
    );
    let problems = environment_problems(&template, workspace());
    assert!(
        mentions(&problems, &["CollectFunction", "SONDEO_QUEUE_URL"]),
        "{problems:?}"
    );
}

#[test]
fn a_variable_only_set_in_globals_counts_and_removing_it_is_reported() {
    let mut template = load_template();
    let removed = template["Globals"]["Function"]["Environment"]["Variables"]
        .as_mapping_mut()
        .and_then(|m| m.remove("SONDEO_TABLE"));
    assert!(removed.is_some(), "Globals set SONDEO_TABLE");
    let problems = environment_problems(&template, workspace());
    for id in ["CollectFunction", "AggregateFunction", "MetricsFunction"] {
        assert!(mentions(&problems, &[id, "SONDEO_TABLE"]), "{problems:?}");
    }
}

#[test]
fn a_secret_set_as_a_plain_environment_variable_is_reported() {
    let mut template = load_template();
    if let Some(vars) = resource_mut(&mut template, "MetricsFunction")["Properties"]["Environment"]
        ["Variables"]
        .as_mapping_mut()
    {
        vars.insert(
            Value::String("SONDEO_API_KEYS".into()),
            Value::String("0123456789abcdef".into()),
        );
    }
    let problems = environment_problems(&template, workspace());
    assert!(
        mentions(
            &problems,
            &["MetricsFunction", "SONDEO_API_KEYS", "plain text"]
        ),
        "{problems:?}"
    );
}

#[test]
fn short_and_long_form_intrinsics_name_the_same_resources() {
    let short: Value = serde_yaml::from_str(
        "a: !GetAtt CollectFunction.Arn\nb: !Sub '${CollectFunctionUrl.FunctionUrl}v1/metrics'\nc: !Ref Table\nd: !Sub ['x${Q}', {Q: !GetAtt ResponseQueue.Arn}]\ne: !Sub 'arn:${AWS::Partition}:x'",
    )
    .unwrap();
    let long: Value = serde_yaml::from_str(
        "a: {'Fn::GetAtt': [CollectFunction, Arn]}\nb: {'Fn::Sub': '${CollectFunctionUrl.FunctionUrl}v1/metrics'}\nc: {Ref: Table}\nd: {'Fn::Sub': ['x${Q}', {Q: {'Fn::GetAtt': [ResponseQueue, Arn]}}]}\ne: {Ref: 'AWS::Region'}",
    )
    .unwrap();
    for v in [&short, &long] {
        assert_eq!(
            references(v),
            [
                "CollectFunction",
                "CollectFunctionUrl",
                "Table",
                "ResponseQueue"
            ]
        );
    }
}

#[test]
fn the_environment_check_follows_each_declared_presence() {
    const DECLARED: &[Variable] = &[
        Variable::required("TABLE", "a table"),
        Variable::optional("ORIGINS", "origins"),
        Variable {
            name: "KEYS_ARN",
            presence: Presence::SecretArn { local: "KEYS" },
            about: "keys' secret",
        },
        Variable {
            name: "KEYS",
            presence: Presence::LocalSecret { arn: "KEYS_ARN" },
            about: "keys",
        },
        Variable {
            name: "ORPHAN",
            presence: Presence::LocalSecret { arn: "ORPHAN_ARN" },
            about: "a secret declared without its ARN variable",
        },
    ];
    let env = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
    let problems = declared_environment_problems("F", &env(&["TABLE", "KEYS_ARN"]), DECLARED);
    assert!(
        mentions(&problems, &["F", "ORPHAN", "ORPHAN_ARN"]),
        "{problems:?}"
    );
    assert_eq!(problems.len(), 1, "an unset optional is fine: {problems:?}");
    let problems = declared_environment_problems("F", &env(&["KEYS"]), DECLARED);
    for words in [
        &["TABLE", "sets it"][..],
        &["KEYS_ARN", "sets it"],
        &["KEYS", "plain text"],
    ] {
        assert!(mentions(&problems, words), "{words:?} in {problems:?}");
    }
    assert!(!mentions(&problems, &["ORIGINS"]), "{problems:?}");
}

#[test]
fn every_public_function_has_a_flood_alarm_that_trips_the_breaker() {
    assert_no_problems("flood breaker", flood_breaker_problems(&load_template()));
}

#[test]
fn a_miswired_flood_breaker_is_reported() {
    let mut t = load_template();
    resources_of_type(&load_template(), LAMBDA_PERMISSION)
        .filter(|(_, p)| {
            p["Properties"]["Principal"].as_str() == Some("lambda.alarms.cloudwatch.amazonaws.com")
        })
        .map(|(id, _)| id.to_string())
        .collect::<Vec<_>>()
        .iter()
        .for_each(|id| {
            t["Resources"]
                .as_mapping_mut()
                .expect("resources")
                .remove(id.as_str());
        });
    let problems = flood_breaker_problems(&t);
    assert!(
        mentions(&problems, &["CollectFloodAlarm", "Permission"]),
        "{problems:?}"
    );
    assert!(
        mentions(&problems, &["MetricsFloodAlarm", "Permission"]),
        "{problems:?}"
    );

    let mut t = load_template();
    resource_mut(&mut t, "CollectFloodAlarm")["Properties"]["OKActions"] = Value::Sequence(vec![]);
    assert!(mentions(
        &flood_breaker_problems(&t),
        &["CollectFloodAlarm", "OKActions"]
    ));

    let mut t = load_template();
    let metrics = resource_mut(&mut t, "MetricsFloodAlarm")["Properties"]["Metrics"]
        .as_sequence_mut()
        .expect("metrics");
    metrics.retain(|m| m["MetricStat"]["Metric"]["MetricName"].as_str() != Some("Throttles"));
    assert!(mentions(
        &flood_breaker_problems(&t),
        &["MetricsFloodAlarm", "Throttles"]
    ));

    let mut t = load_template();
    resource_mut(&mut t, "FloodBreakerFunction")["Properties"]["Environment"]["Variables"]
        ["SONDEO_GUARDED_FUNCTIONS"] = sub("${CollectFunction}");
    assert!(mentions(
        &flood_breaker_problems(&t),
        &["SONDEO_GUARDED_FUNCTIONS", "MetricsFunction"]
    ));

    let mut t = load_template();
    resource_mut(&mut t, "FloodBreakerFunction")["Properties"]["Policies"][0]["Statement"][0]
        ["Resource"] = Value::Sequence(vec![get_att("CollectFunction.Arn")]);
    assert!(mentions(
        &flood_breaker_problems(&t),
        &["PutFunctionConcurrency", "MetricsFunction"]
    ));

    let mut t = load_template();
    t["Resources"]
        .as_mapping_mut()
        .expect("resources")
        .remove("MetricsFloodAlarm");
    assert!(mentions(
        &flood_breaker_problems(&t),
        &["MetricsFunction", "no flood alarm"]
    ));
}

#[test]
fn a_breaker_that_could_stay_capped_or_switch_a_function_off_is_reported() {
    let mut t = load_template();
    resource_mut(&mut t, "FloodBreakerFunction")["Properties"]
        .as_mapping_mut()
        .expect("properties")
        .remove("Events");
    assert!(mentions(
        &flood_breaker_problems(&t),
        &["FloodBreakerFunction", "schedule"]
    ));

    let mut t = load_template();
    t["Parameters"]["FloodConcurrency"]["MinValue"] = Value::Number(0.into());
    assert!(mentions(
        &flood_breaker_problems(&t),
        &["SONDEO_FLOOD_CONCURRENCY", "off"]
    ));

    let mut t = load_template();
    resource_mut(&mut t, "FloodBreakerFunction")["Properties"]["Environment"]["Variables"]
        ["SONDEO_FLOOD_ALARMS"] = sub("${AWS::StackName}-collect-flood");
    assert!(mentions(
        &flood_breaker_problems(&t),
        &["MetricsFloodAlarm", "SONDEO_FLOOD_ALARMS"]
    ));

    let mut t = load_template();
    resource_mut(&mut t, "FloodBreakerFunction")["Properties"]["Policies"][0]["Statement"][1]
        ["Resource"] = Value::Sequence(vec![sub(
        "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:${AWS::StackName}-collect-flood",
    )]);
    assert!(mentions(
        &flood_breaker_problems(&t),
        &["MetricsFloodAlarm", "DescribeAlarms"]
    ));
}

#[test]
fn each_function_is_granted_exactly_the_actions_and_partitions_it_uses() {
    assert_no_problems("permissions", permission_problems(&load_template()));
}

/// The policy statements of a function, to break.
fn statements_mut<'a>(template: &'a mut Value, function: &str) -> &'a mut Vec<Value> {
    resource_mut(template, function)["Properties"]["Policies"][0]["Statement"]
        .as_sequence_mut()
        .expect("statements")
}

fn statement_mut<'a>(template: &'a mut Value, function: &str, sid: &str) -> &'a mut Value {
    statements_mut(template, function)
        .iter_mut()
        .find(|s| s["Sid"].as_str() == Some(sid))
        .unwrap_or_else(|| panic!("{function} has no statement {sid}"))
}

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).expect("YAML")
}

#[test]
fn an_action_a_function_does_not_call_is_reported() {
    // The aggregator's old grants: GetItem and ConditionCheckItem, which it never calls.
    let mut t = load_template();
    statements_mut(&mut t, "AggregateFunction").push(yaml(
        "Effect: Allow\nAction: [dynamodb:GetItem, dynamodb:ConditionCheckItem]\nResource: !GetAtt Table.Arn\nCondition: {ForAllValues:StringLike: {dynamodb:LeadingKeys: ['R#*']}}",
    ));
    let problems = permission_problems(&t);
    for action in ["dynamodb:GetItem", "dynamodb:ConditionCheckItem"] {
        assert!(
            mentions(&problems, &["AggregateFunction", action, "beyond"]),
            "{action}: {problems:?}"
        );
    }

    let mut t = load_template();
    statement_mut(&mut t, "CollectFunction", "EnqueueResponses")["Action"] =
        yaml("[sqs:SendMessage, sqs:ReceiveMessage]");
    assert!(mentions(
        &permission_problems(&t),
        &["CollectFunction", "sqs:ReceiveMessage", "beyond"]
    ));
}

#[test]
fn a_dynamodb_grant_on_the_whole_table_or_another_partition_is_reported() {
    // Collect reading every item (response records, personal data included): no condition.
    let mut t = load_template();
    statement_mut(&mut t, "CollectFunction", "ReadSurveys")
        .as_mapping_mut()
        .expect("statement")
        .remove("Condition");
    let problems = permission_problems(&t);
    assert!(
        mentions(&problems, &["CollectFunction", "GetItem", "LeadingKeys"]),
        "{problems:?}"
    );

    // ForAnyValue lets other partitions through.
    let mut t = load_template();
    statement_mut(&mut t, "CollectFunction", "ReadSurveys")["Condition"] =
        yaml("ForAnyValue:StringEquals: {dynamodb:LeadingKeys: [SURVEY]}");
    assert!(mentions(
        &permission_problems(&t),
        &["CollectFunction", "LeadingKeys"]
    ));

    // Collect reading response records.
    let mut t = load_template();
    statement_mut(&mut t, "CollectFunction", "ReadSurveys")["Condition"] =
        yaml("ForAllValues:StringLike: {dynamodb:LeadingKeys: [SURVEY, warm-up, 'R#*']}");
    assert!(mentions(
        &permission_problems(&t),
        &["CollectFunction", "R#*", "beyond"]
    ));
}

#[test]
fn a_missing_grant_or_an_unreviewed_policy_is_reported() {
    let mut t = load_template();
    statements_mut(&mut t, "AggregateFunction")
        .retain(|s| s["Sid"].as_str() != Some("AddToCounters"));
    assert!(mentions(
        &permission_problems(&t),
        &["AggregateFunction", "lacks", "dynamodb:UpdateItem", "C#*"]
    ));

    let mut t = load_template();
    resource_mut(&mut t, "MetricsFunction")["Properties"]["Policies"]
        .as_sequence_mut()
        .expect("policies")
        .push(yaml("DynamoDBReadPolicy: {TableName: !Ref Table}"));
    assert!(mentions(
        &permission_problems(&t),
        &["MetricsFunction", "not an inline statement list"]
    ));
}

#[test]
fn the_lag_alarm_fires_at_the_documented_fifteen_minutes() {
    assert_no_problems("lag alarm", lag_alarm_problems(&load_template()));
    let mut t = load_template();
    let alarm = &mut resource_mut(&mut t, "AggregationLagAlarm")["Properties"];
    alarm["EvaluationPeriods"] = Value::Number(3.into());
    alarm
        .as_mapping_mut()
        .expect("properties")
        .remove("DatapointsToAlarm");
    assert!(mentions(
        &lag_alarm_problems(&t),
        &["AggregationLagAlarm", "15 minutes"]
    ));
}
