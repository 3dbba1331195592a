//! `infra/template.yaml` must describe the code in this workspace: every deployed function is a
//! binary crate under `functions/` (and every such crate is deployed), every route of
//! `sondeo::web::ROUTES` reaches the function that serves it (and no other route exists), and
//! every environment variable a function's code reads is set in its environment.
//!
//! The checks return a list of problems so the drift tests at the bottom can prove, on
//! deliberately broken copies of the template, that each check really fails.

use serde_json::Value as Json;
use serde_yaml::value::{Tag, TaggedValue};
use serde_yaml::Value;
use sondeo::web::{Function, ROUTES};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const SERVERLESS_FUNCTION: &str = "AWS::Serverless::Function";
const API_ROUTE: &str = "AWS::ApiGatewayV2::Route";
const API_INTEGRATION: &str = "AWS::ApiGatewayV2::Integration";

/// Variables the code reads only as a local-mode alternative to a Secrets Manager secret: on
/// Lambda the secret's ARN variable is read instead, and the secret itself must never be a
/// plain environment variable (anyone with `lambda:GetFunctionConfiguration` could read it).
const LOCAL_MODE_SECRETS: &[(&str, &str)] = &[
    ("SONDEO_LINK_KEYS", "SONDEO_LINK_KEYS_SECRET_ARN"),
    ("SONDEO_API_KEYS", "SONDEO_API_KEYS_SECRET_ARN"),
];

/// The binary that serves a router function: an exhaustive match, so a new `Function` variant
/// does not compile until it is mapped here (and then deployed in the template).
fn binary_for(function: Function) -> &'static str {
    match function {
        Function::Collect => "collect",
        Function::Metrics => "metrics",
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
    /// The directory of the binary's `main.rs`: every `.rs` file below it is the function's code.
    src_dir: PathBuf,
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
                let src = PathBuf::from(target["src_path"].as_str().unwrap_or_default());
                binaries.insert(
                    target["name"].as_str().unwrap_or_default().to_string(),
                    FunctionBinary {
                        crate_dir: crate_dir.clone(),
                        src_dir: src.parent().map(Path::to_path_buf).unwrap_or_default(),
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
        if f.build_method.as_deref() != Some("rust-cargolambda") {
            problems.push(format!(
                "{id}: Metadata.BuildMethod is {:?}, expected rust-cargolambda",
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
                Ok(dir) if dir != ws.root && dir != found.crate_dir => problems.push(format!(
                    "{id}: CodeUri `{uri}` resolves to {}, which is neither the workspace root {} nor the crate of binary `{binary}` ({})",
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

/// The binary of the function a value refers to (through a Ref, GetAtt or Sub), if any.
fn referenced_function_binary(template: &Value, value: &Value) -> Option<String> {
    let functions = template_functions(template);
    references(value).into_iter().find_map(|id| {
        functions.iter().find(|f| f.logical_id == id).map(|f| {
            f.binary
                .clone()
                .unwrap_or_else(|| format!("<{id} without Binary>"))
        })
    })
}

/// Every route key the template exposes, with the binary of the function it invokes (or a
/// description of why it invokes none).
fn template_routes(template: &Value) -> Result<BTreeMap<String, String>, Vec<String>> {
    let mut routes = BTreeMap::new();
    let mut problems = Vec::new();
    for (id, route) in resources_of_type(template, API_ROUTE) {
        let props = &route["Properties"];
        let Some(key) = props["RouteKey"].as_str() else {
            problems.push(format!("{id}: RouteKey is not a plain string"));
            continue;
        };
        let integration = references(&props["Target"]).into_iter().find(|r| {
            resources_of_type(template, API_INTEGRATION).any(|(integration, _)| integration == r)
        });
        let target = match integration {
            None => Err(format!(
                "{id}: Target does not refer to an AWS::ApiGatewayV2::Integration"
            )),
            Some(integration) => {
                let uri =
                    &template["Resources"][integration.as_str()]["Properties"]["IntegrationUri"];
                referenced_function_binary(template, uri).ok_or_else(|| {
                    format!("{id}: integration {integration} does not invoke a function of this template")
                })
            }
        };
        add_route(&mut routes, &mut problems, key, target, id);
    }
    // Routes declared as SAM HttpApi events on the function itself.
    for f in template_functions(template) {
        let events = &template["Resources"][f.logical_id.as_str()]["Properties"]["Events"];
        for (_, event) in events.as_mapping().into_iter().flatten() {
            if event["Type"].as_str() != Some("HttpApi") {
                continue;
            }
            let props = &event["Properties"];
            let key = match (props["Method"].as_str(), props["Path"].as_str()) {
                (Some(method), Some(path)) => format!("{method} {path}"),
                _ => "$default".to_string(),
            };
            let binary = f
                .binary
                .clone()
                .ok_or_else(|| format!("{} has no Binary", f.logical_id));
            add_route(&mut routes, &mut problems, &key, binary, &f.logical_id);
        }
    }
    if problems.is_empty() {
        Ok(routes)
    } else {
        Err(problems)
    }
}

fn add_route(
    routes: &mut BTreeMap<String, String>,
    problems: &mut Vec<String>,
    key: &str,
    target: Result<String, String>,
    origin: &str,
) {
    let key = normalise_route_key(key);
    match target {
        Err(why) => problems.push(format!("route `{key}` ({origin}): {why}")),
        Ok(binary) => {
            if let Some(previous) = routes.insert(key.clone(), binary) {
                problems.push(format!(
                    "route `{key}` is defined twice (also for `{previous}`)"
                ));
            }
        }
    }
}

fn normalise_route_key(key: &str) -> String {
    match key.split_once(' ') {
        Some((method, path)) => format!("{} {}", method.to_ascii_uppercase(), path.trim()),
        None => key.to_string(),
    }
}

/// Problems between the router's routes and the template's.
fn route_problems(template: &Value) -> Vec<String> {
    let routes = match template_routes(template) {
        Ok(routes) => routes,
        Err(problems) => return problems,
    };
    let mut problems = Vec::new();
    let mut known = BTreeSet::new();
    for (method, path, function) in ROUTES {
        let key = format!("{method} {path}");
        let want = binary_for(*function);
        match routes.get(&key) {
            None => problems.push(format!(
                "router route `{key}` ({function:?}) has no AWS::ApiGatewayV2::Route with RouteKey `{key}` in infra/template.yaml"
            )),
            Some(got) if got != want => problems.push(format!(
                "route `{key}` is integrated with `{got}`, but the router serves it from {function:?} (binary `{want}`)"
            )),
            Some(_) => {}
        }
        known.insert(key);
    }
    for (key, binary) in &routes {
        if !known.contains(key) {
            problems.push(format!(
                "template route `{key}` (to `{binary}`) is not in sondeo::web::ROUTES, so the function would answer it with 404"
            ));
        }
    }
    // Every integrated function must let API Gateway invoke it.
    let invokable: BTreeSet<String> = resources_of_type(template, "AWS::Lambda::Permission")
        .filter(|(_, p)| p["Properties"]["Principal"].as_str() == Some("apigateway.amazonaws.com"))
        .filter_map(|(_, p)| referenced_function_binary(template, &p["Properties"]["FunctionName"]))
        .collect();
    for binary in routes.values().collect::<BTreeSet<_>>() {
        if !invokable.contains(binary) {
            problems.push(format!(
                "function `{binary}` serves routes but no AWS::Lambda::Permission lets apigateway.amazonaws.com invoke it"
            ));
        }
    }
    problems
}

// ---------------------------------------------------------------------------- code scanning

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The string literal arguments of every call `callee("...")` in `src`, where `callee` is not
/// the tail of a longer identifier (`config::required("X")` and `required("X")` both match).
fn literal_arguments(src: &str, callee: &str) -> Vec<String> {
    let pattern = format!("{callee}(\"");
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(pos) = src[from..].find(&pattern) {
        let start = from + pos;
        from = start + pattern.len();
        if src[..start].chars().next_back().is_some_and(is_ident_char) {
            continue;
        }
        if let Some(end) = src[from..].find('"') {
            found.push(src[from..from + end].to_string());
        }
    }
    found
}

/// Names called as `module::name(` in `src` (with or without a leading `sondeo::`).
fn module_calls(src: &str, module: &str) -> BTreeSet<String> {
    let pattern = format!("{module}::");
    let mut found = BTreeSet::new();
    let mut from = 0;
    while let Some(pos) = src[from..].find(&pattern) {
        let start = from + pos;
        from = start + pattern.len();
        if src[..start].chars().next_back().is_some_and(is_ident_char) {
            continue;
        }
        let name: String = src[from..]
            .chars()
            .take_while(|c| is_ident_char(*c))
            .collect();
        if !name.is_empty() && src[from + name.len()..].starts_with('(') {
            found.insert(name);
        }
    }
    // Functions imported by `use sondeo::module::{a, b};` (or `::a;`) and called bare.
    for line in src.lines().map(str::trim) {
        let Some(items) = line
            .strip_prefix("use sondeo::")
            .and_then(|l| l.strip_prefix(module))
            .and_then(|l| l.strip_prefix("::"))
        else {
            continue;
        };
        let items = items
            .trim_end_matches(';')
            .trim_matches(|c| c == '{' || c == '}');
        for name in items.split(',').map(str::trim) {
            let called = src
                .match_indices(&format!("{name}("))
                .any(|(i, _)| !src[..i].chars().next_back().is_some_and(is_ident_char));
            if !name.is_empty() && name.chars().all(is_ident_char) && called {
                found.insert(name.to_string());
            }
        }
    }
    found
}

/// The body of `fn name` in `src` (from its opening brace to the matching close), skipping
/// braces inside string literals.
fn fn_body<'a>(src: &'a str, name: &str) -> Option<&'a str> {
    let start = [format!("fn {name}("), format!("fn {name}<")]
        .iter()
        .filter_map(|p| src.find(p.as_str()))
        .min()?;
    let open = start + src[start..].find('{')?;
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in src[open..].char_indices() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&src[open..=open + i]);
                }
            }
            _ => {}
        }
    }
    None
}

/// Names of the functions defined in a Rust source file.
fn defined_fns(src: &str) -> BTreeSet<String> {
    src.match_indices("fn ")
        .filter(|(i, _)| !src[..*i].chars().next_back().is_some_and(is_ident_char))
        .map(|(i, m)| {
            src[i + m.len()..]
                .chars()
                .take_while(|c| is_ident_char(*c))
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

/// Environment variables read directly in `src`: `required("X")`, `optional("X")`, `env::var("X")`.
fn direct_reads(src: &str) -> BTreeSet<String> {
    ["required", "optional", "env::var", "env::var_os"]
        .iter()
        .flat_map(|callee| literal_arguments(src, callee))
        .collect()
}

/// Environment variables read by `fn name` of a shared module's source, following calls to the
/// module's other functions.
fn reads_through(module_src: &str, name: &str, seen: &mut BTreeSet<String>) -> BTreeSet<String> {
    if !seen.insert(name.to_string()) {
        return BTreeSet::new();
    }
    let Some(body) = fn_body(module_src, name) else {
        return BTreeSet::new();
    };
    let mut vars = direct_reads(body);
    for callee in defined_fns(module_src) {
        let called = body
            .match_indices(&format!("{callee}("))
            .any(|(i, _)| !body[..i].chars().next_back().is_some_and(is_ident_char));
        if called {
            vars.extend(reads_through(module_src, &callee, seen));
        }
    }
    vars
}

/// Environment variables a function's code reads: directly in its own sources, and through the
/// functions of `sondeo::config` and `sondeo::lambda` it calls.
fn variables_read(code: &str, shared_modules: &[(&str, String)]) -> BTreeSet<String> {
    let mut vars = direct_reads(code);
    for (module, module_src) in shared_modules {
        let mut seen = BTreeSet::new();
        for name in module_calls(code, module) {
            vars.extend(reads_through(module_src, &name, &mut seen));
        }
    }
    vars
}

fn rust_sources(dir: &Path) -> String {
    let mut out = String::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            out.push_str(&rust_sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&read(&path));
            out.push('\n');
        }
    }
    out
}

fn shared_modules() -> Vec<(&'static str, String)> {
    let shared = repo_root().join("shared").join("src");
    vec![
        ("config", read(&shared.join("config.rs"))),
        ("lambda", read(&shared.join("lambda.rs"))),
    ]
}

/// Problems with the functions' environments: variables read but not set, secrets set in plain text.
fn environment_problems(template: &Value, ws: &Workspace) -> Vec<String> {
    let modules = shared_modules();
    let mut problems = Vec::new();
    for f in template_functions(template) {
        let id = &f.logical_id;
        let Some(found) = f.binary.as_deref().and_then(|b| ws.binaries.get(b)) else {
            continue; // reported by function_problems
        };
        let read = variables_read(&rust_sources(&found.src_dir), &modules);
        for var in &read {
            if let Some((_, arn_var)) = LOCAL_MODE_SECRETS.iter().find(|(v, _)| v == var) {
                if !read.contains(*arn_var) {
                    problems.push(format!(
                        "{id}: the code reads the local-mode secret {var} but not {arn_var}, so on Lambda the secret would have to be a plain environment variable"
                    ));
                }
                continue;
            }
            if !f.environment.contains(var) {
                problems.push(format!(
                    "{id}: the code reads environment variable {var}, but neither the function's Environment.Variables nor Globals.Function.Environment.Variables sets it"
                ));
            }
        }
        for (secret, arn_var) in LOCAL_MODE_SECRETS {
            if f.environment.contains(*secret) {
                problems.push(format!(
                    "{id}: sets {secret} in plain text; give it {arn_var} (a Secrets Manager ARN) instead"
                ));
            }
        }
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
fn every_router_route_is_an_api_gateway_route_integrated_with_the_function_that_serves_it() {
    assert_no_problems("routes", route_problems(&load_template()));
}

#[test]
fn every_environment_variable_a_function_reads_is_set_in_its_template_environment() {
    assert_no_problems(
        "environment",
        environment_problems(&load_template(), workspace()),
    );
}

#[test]
fn the_code_scan_finds_the_variables_each_function_reads() {
    // Guards the scanner itself: if it silently found nothing, the environment test would pass
    // vacuously.
    let ws = workspace();
    let modules = shared_modules();
    let read = |binary: &str| {
        let found = ws
            .binaries
            .get(binary)
            .unwrap_or_else(|| panic!("no binary `{binary}` under functions/"));
        variables_read(&rust_sources(&found.src_dir), &modules)
    };
    let collect = read("collect");
    for var in [
        "SONDEO_TABLE",
        "SONDEO_QUEUE_URL",
        "SONDEO_LINK_KEYS",
        "SONDEO_LINK_KEYS_SECRET_ARN",
        "SONDEO_ALLOWED_ORIGINS",
    ] {
        assert!(
            collect.contains(var),
            "collect reads {var}; found {collect:?}"
        );
    }
    let metrics = read("metrics");
    for var in ["SONDEO_API_KEYS_SECRET_ARN", "SONDEO_BASE_URL"] {
        assert!(
            metrics.contains(var),
            "metrics reads {var}; found {metrics:?}"
        );
    }
    assert!(read("aggregate").contains("SONDEO_TABLE"));
}

// ------------------------------------------------- drift: each check fails on a broken template

fn sub(text: &str) -> Value {
    Value::Tagged(Box::new(TaggedValue {
        tag: Tag::new("Sub"),
        value: Value::String(text.to_string()),
    }))
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
fn a_router_route_missing_from_the_template_is_reported() {
    let mut template = load_template();
    let removed = template["Resources"]
        .as_mapping_mut()
        .and_then(|m| m.remove("MetricsGetRoute"));
    assert!(removed.is_some(), "the template has a MetricsGetRoute");
    let problems = route_problems(&template);
    assert!(mentions(&problems, &["GET /v1/metrics"]), "{problems:?}");
}

#[test]
fn a_route_integrated_with_the_wrong_function_is_reported() {
    let mut template = load_template();
    resource_mut(&mut template, "MetricsGetRoute")["Properties"]["Target"] =
        sub("integrations/${CollectIntegration}");
    let problems = route_problems(&template);
    assert!(
        mentions(&problems, &["GET /v1/metrics", "`collect`", "Metrics"]),
        "{problems:?}"
    );
}

#[test]
fn a_template_route_the_router_does_not_know_is_reported() {
    let mut template = load_template();
    resource_mut(&mut template, "LinksCreateRoute")["Properties"]["RouteKey"] =
        Value::String("POST /v1/link".into());
    let problems = route_problems(&template);
    assert!(
        mentions(&problems, &["POST /v1/link`", "not in"]),
        "{problems:?}"
    );
    assert!(mentions(&problems, &["POST /v1/links"]), "{problems:?}");
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
        "a: !GetAtt CollectFunction.Arn\nb: !Sub 'integrations/${CollectIntegration}'\nc: !Ref Table\nd: !Sub ['x${Q}', {Q: !GetAtt ResponseQueue.Arn}]\ne: !Sub 'arn:${AWS::Partition}:x'",
    )
    .unwrap();
    let long: Value = serde_yaml::from_str(
        "a: {'Fn::GetAtt': [CollectFunction, Arn]}\nb: {'Fn::Sub': 'integrations/${CollectIntegration}'}\nc: {Ref: Table}\nd: {'Fn::Sub': ['x${Q}', {Q: {'Fn::GetAtt': [ResponseQueue, Arn]}}]}\ne: {Ref: 'AWS::Region'}",
    )
    .unwrap();
    for v in [&short, &long] {
        assert_eq!(
            references(v),
            [
                "CollectFunction",
                "CollectIntegration",
                "Table",
                "ResponseQueue"
            ]
        );
    }
}

#[test]
fn the_scanner_follows_shared_config_functions_and_ignores_lookalikes() {
    let config = r#"
        pub fn required(name: &'static str) -> Result<String, E> { std::env::var(name) }
        pub fn optional(name: &str) -> Option<String> { std::env::var(name).ok() }
        pub async fn read_secret(arn: &str) -> String { format!("{arn}: {}", 1) }
        pub async fn keyring() -> Keyring {
            if let Some(spec) = optional("LOCAL_KEYS") { return spec; }
            let arn = required("KEYS_ARN")?;
            read_secret(&arn).await
        }
        pub fn base() -> String { helper() }
        fn helper() -> String { optional("BASE").unwrap_or_default() }
        pub fn unused() { required("NEVER"); }
        pub async fn imported() -> String { required("IMPORTED") }
        pub fn other() { required("NOT_CALLED"); }
    "#;
    let main = r#"
        use sondeo::config::{imported, other};
        let i = imported().await;
        let t = config::required("TABLE")?;
        let k = sondeo::config::keyring().await;
        let b = config::base();
        let x = myconfig::unused();
        let y = std::env::var("DIRECT");
    "#;
    let read = variables_read(main, &[("config", config.to_string())]);
    let want: BTreeSet<String> = [
        "TABLE",
        "LOCAL_KEYS",
        "KEYS_ARN",
        "BASE",
        "DIRECT",
        "IMPORTED",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(read, want);
}
