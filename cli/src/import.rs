//! `sondeo import`: a CSV or JSON Lines export from another tool in, its answers sent with their
//! original times through `POST /v1/imports` (in process locally, over HTTPS against a deployed
//! stack) in batches of at most [`MAX_IMPORT_ROWS`] rows.
//!
//! The file is streamed: memory holds one batch, never the file. Each row is mapped (flags, a
//! mapping file, or a preset), checked against the survey here (so a bad row is reported with its
//! line number and never sent), and a row the API still refuses is reported the same way. Bad
//! rows never stop the good ones; they go to the rejects file as `line,reason,row`.

use crate::client::{path_segment, ApiClient, ClientError};
use http::Method;
use jiff::tz::TimeZone;
use sondeo_domain::import::{parse_time, ImportRow, SendRule, IMPORT_BODY_BYTES, MAX_IMPORT_ROWS};
use sondeo_domain::survey::{check_slug, clip, Survey};
use sondeo_domain::time::now_ms;
use std::collections::BTreeMap;
use std::io::{BufRead, Write};

/// Most bytes of rows in one call: well under the API's body limit.
const CALL_BYTES: usize = IMPORT_BODY_BYTES * 3 / 4;

/// A field of an imported answer that a column can be mapped to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Field {
    /// The source tool's response id (the row's identity).
    Id,
    /// The respondent id.
    Respondent,
    /// The score.
    Score,
    /// The comment.
    Comment,
    /// The answer time.
    AnsweredAt,
    /// The touchpoint slug.
    Touchpoint,
    /// The send.
    Send,
}

impl Field {
    fn parse(name: &str) -> Option<Field> {
        Some(
            match name.trim().to_ascii_lowercase().replace('_', "-").as_str() {
                "id" | "response-id" => Field::Id,
                "respondent" => Field::Respondent,
                "score" => Field::Score,
                "comment" => Field::Comment,
                "answered-at" | "time" => Field::AnsweredAt,
                "touchpoint" => Field::Touchpoint,
                "send" => Field::Send,
                _ => return None,
            },
        )
    }

    fn name(self) -> &'static str {
        match self {
            Field::Id => "id",
            Field::Respondent => "respondent",
            Field::Score => "score",
            Field::Comment => "comment",
            Field::AnsweredAt => "answered-at",
            Field::Touchpoint => "touchpoint",
            Field::Send => "send",
        }
    }
}

/// Which columns hold which fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapping {
    /// Field to column name (a JSON key; `a.b` reads key `b` of object `a`).
    pub fields: BTreeMap<Field, String>,
    /// Columns copied into properties: a column of text (property named after the column) or a
    /// JSON object (one property per key).
    pub properties: Vec<String>,
}

/// Why the mapping cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// A `--map` entry without `=`.
    #[error("'{0}' is not a mapping: use field=column, such as score=\"How likely are you to recommend us?\"")]
    Syntax(String),
    /// A field name that does not exist.
    #[error("'{0}' is not a field: map id, respondent, score, comment, answered-at, touchpoint, send or properties")]
    UnknownField(String),
    /// A required field has no column.
    #[error("{0}")]
    Missing(String),
    /// A mapped column is not in the file's header.
    #[error(
        "column '{column}' (mapped to {field}) is not in the file; its columns are: {columns}"
    )]
    NoSuchColumn {
        /// The field.
        field: String,
        /// The column named.
        column: String,
        /// The header's columns.
        columns: String,
    },
    /// An unknown preset.
    #[error("unknown preset '{0}': use delighted, delighted-json, formbricks or typeform")]
    UnknownPreset(String),
}

/// A known export format: its column names, and what the user must still say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// Delighted's CSV response export.
    Delighted,
    /// Delighted's API `GET /v1/survey_responses.json` pages, saved one page (or one response)
    /// per line.
    DelightedJson,
    /// Formbricks' CSV response download.
    Formbricks,
    /// Typeform's CSV response export.
    Typeform,
}

impl Preset {
    /// The preset with this name.
    pub fn parse(name: &str) -> Result<Preset, MappingError> {
        match name {
            "delighted" => Ok(Preset::Delighted),
            "delighted-json" => Ok(Preset::DelightedJson),
            "formbricks" => Ok(Preset::Formbricks),
            "typeform" => Ok(Preset::Typeform),
            other => Err(MappingError::UnknownPreset(clip(other, 32).to_string())),
        }
    }

    /// The preset's mapping. Column names come from the tools' exports as documented or seen in
    /// public exports; where that could not be confirmed it says so, and every column can be
    /// overridden with `--map`.
    pub fn mapping(self) -> Mapping {
        let m = |pairs: &[(Field, &str)], props: &[&str]| Mapping {
            fields: pairs.iter().map(|(f, c)| (*f, c.to_string())).collect(),
            properties: props.iter().map(|p| p.to_string()).collect(),
        };
        match self {
            // Delighted's CSV export (Settings > Export): one row per response. "Response ID",
            // "Email", "Score", "Comment" and "Response timestamp" are the export's columns as
            // we know them; not confirmed against a current export, so override with --map if
            // yours differ. Person properties follow as their own columns (map them with
            // --map properties=...).
            Preset::Delighted => m(
                &[
                    (Field::Id, "Response ID"),
                    (Field::Respondent, "Email"),
                    (Field::Score, "Score"),
                    (Field::Comment, "Comment"),
                    (Field::AnsweredAt, "Response timestamp"),
                ],
                &[],
            ),
            // The API's survey response object: id, person (the person id; person.email when
            // fetched with expand[]=person), score, comment, created_at and updated_at (Unix
            // seconds), person_properties (an object).
            Preset::DelightedJson => m(
                &[
                    (Field::Id, "id"),
                    (Field::Respondent, "person"),
                    (Field::Score, "score"),
                    (Field::Comment, "comment"),
                    (Field::AnsweredAt, "created_at"),
                ],
                &["person_properties"],
            ),
            // Formbricks' response download: "Response ID", "Timestamp", "User ID", then one
            // column per question headline (the score column must be named with --map
            // score=...). The timestamp's exact format was not confirmed; give --tz if it has
            // no offset.
            Preset::Formbricks => m(
                &[
                    (Field::Id, "Response ID"),
                    (Field::Respondent, "User ID"),
                    (Field::AnsweredAt, "Timestamp"),
                ],
                &[],
            ),
            // Typeform's CSV export: "#" (the response token), one column per question,
            // hidden fields, "Start Date (UTC)", "Submit Date (UTC)" (`2024-10-05 02:41:38`, in
            // UTC), "Network ID". Map the score question with --map score=...; the respondent
            // (a hidden field such as email) with --map respondent=...
            Preset::Typeform => m(
                &[(Field::Id, "#"), (Field::AnsweredAt, "Submit Date (UTC)")],
                &[],
            ),
        }
    }

    /// The zone of the preset's naive times, when the export says it.
    pub fn zone(self) -> Option<TimeZone> {
        match self {
            Preset::Typeform => Some(TimeZone::UTC),
            _ => None,
        }
    }

    /// The file format of the preset's exports.
    pub fn format(self) -> Format {
        match self {
            Preset::DelightedJson => Format::JsonLines,
            _ => Format::Csv,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Preset::Delighted => "delighted",
            Preset::DelightedJson => "delighted-json",
            Preset::Formbricks => "formbricks",
            Preset::Typeform => "typeform",
        }
    }
}

impl Mapping {
    /// Applies `field=column` entries (from `--map` or a mapping file's lines) over this mapping;
    /// `properties=A,B` adds property columns.
    pub fn apply<'a>(
        &mut self,
        entries: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), MappingError> {
        for entry in entries {
            let entry = entry.trim();
            if entry.is_empty() || entry.starts_with('#') {
                continue;
            }
            let (field, column) = entry
                .split_once('=')
                .ok_or_else(|| MappingError::Syntax(clip(entry, 80).to_string()))?;
            let column = column.trim().trim_matches('"');
            if field.trim() == "properties" {
                self.properties.extend(
                    column
                        .split(',')
                        .map(str::trim)
                        .filter(|c| !c.is_empty())
                        .map(str::to_string),
                );
                continue;
            }
            let field = Field::parse(field)
                .ok_or_else(|| MappingError::UnknownField(clip(field, 40).to_string()))?;
            if column.is_empty() {
                return Err(MappingError::Syntax(clip(entry, 80).to_string()));
            }
            self.fields.insert(field, column.to_string());
        }
        Ok(())
    }
}

/// The file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values with a header line.
    Csv,
    /// One JSON object per line (or one array of objects per line, such as an API page).
    JsonLines,
}

/// Everything an import needs besides the file.
#[derive(Debug, Clone)]
pub struct ImportPlan {
    /// Survey id.
    pub survey: String,
    /// The touchpoint of every row, unless mapped to a column.
    pub touchpoint: Option<String>,
    /// Columns to fields.
    pub mapping: Mapping,
    /// The zone of naive times (and of months and quarters for `--send-per`).
    pub zone: Option<TimeZone>,
    /// How rows are split into sends.
    pub send: SendRule,
    /// CSV or JSON Lines.
    pub format: Format,
    /// Validate and count only; send nothing.
    pub dry_run: bool,
    /// The preset used, for messages.
    pub preset: Option<Preset>,
}

/// One row refused, with its line in the file (1 is a CSV file's header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Line number in the file.
    pub line: u64,
    /// Why.
    pub reason: String,
    /// The row as it was in the file.
    pub row: String,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Rows read.
    pub read: u64,
    /// Rows imported (with a dry run: that would be).
    pub imported: u64,
    /// Rows refused.
    pub refused: u64,
    /// Rows imported (or that would be) per touchpoint.
    pub per_touchpoint: BTreeMap<String, u64>,
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The mapping does not fit the file.
    #[error(transparent)]
    Mapping(#[from] MappingError),
    /// The file has no header line.
    #[error("the file is empty: a CSV export needs a header line naming its columns")]
    Empty,
    /// Reading the file or writing the rejects failed.
    #[error("{0}")]
    Io(String),
    /// The API refused a call (an unknown survey, a batch it cannot take, ...).
    #[error(transparent)]
    Api(#[from] ClientError),
    /// The API answered something unexpected.
    #[error("the API's answer to an import batch could not be read: {0}")]
    Answer(String),
}

/// One row read from the file, before mapping.
enum RawRow {
    Csv(csv::StringRecord),
    Json(serde_json::Value),
}

/// Column positions of a CSV file's header.
struct Columns(BTreeMap<String, usize>);

impl RawRow {
    fn get(&self, columns: &Columns, name: &str) -> Option<String> {
        match self {
            RawRow::Csv(r) => columns
                .0
                .get(name)
                .and_then(|i| r.get(*i))
                .map(str::to_string),
            RawRow::Json(v) => {
                let found = v
                    .get(name)
                    .or_else(|| name.split('.').try_fold(v, |v, key| v.get(key)))?;
                match found {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(s) => Some(s.clone()),
                    // An expanded Delighted person: its email, else its id.
                    serde_json::Value::Object(o) => {
                        o.get("email").or_else(|| o.get("id")).map(|v| {
                            v.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string())
                        })
                    }
                    other => Some(other.to_string()),
                }
            }
        }
    }

    fn properties(&self, columns: &Columns, name: &str, into: &mut BTreeMap<String, String>) {
        match self {
            RawRow::Json(v) => match v.get(name) {
                Some(serde_json::Value::Object(o)) => {
                    for (k, v) in o {
                        let value = v
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string());
                        if !value.is_empty() && !v.is_null() {
                            into.insert(property_name(k), value);
                        }
                    }
                }
                Some(serde_json::Value::Null) | None => {}
                Some(v) => {
                    let value = v
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string());
                    into.insert(property_name(name), value);
                }
            },
            RawRow::Csv(_) => {
                if let Some(value) = self.get(columns, name).filter(|v| !v.trim().is_empty()) {
                    into.insert(property_name(name), value.trim().to_string());
                }
            }
        }
    }

    fn original(&self) -> String {
        match self {
            RawRow::Csv(r) => {
                let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
                let _ = w.write_record(r);
                w.into_inner()
                    .map(|b| String::from_utf8_lossy(&b).trim_end().to_string())
                    .unwrap_or_default()
            }
            RawRow::Json(v) => v.to_string(),
        }
    }
}

/// A column name as a property name: lowercase slug (`Plan Type` → `plan-type`).
pub fn property_name(column: &str) -> String {
    let mut out = String::new();
    for c in column.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-');
    out.chars().take(64).collect()
}

/// Reads a score cell: a whole number (`9`, `9.0`).
fn parse_score(raw: &str) -> Result<i64, String> {
    let t = raw.trim();
    if t.is_empty() {
        return Err("no score".into());
    }
    if let Ok(n) = t.parse::<i64>() {
        return Ok(n);
    }
    match t.parse::<f64>() {
        Ok(f) if f.fract() == 0.0 && f.abs() < 1e15 => Ok(f as i64),
        _ => Err(format!("score '{}' is not a whole number", clip(t, 20))),
    }
}

impl ImportPlan {
    /// Checks the mapping against the file's columns (a CSV header; none for JSON Lines).
    fn check(&self, header: Option<&Columns>) -> Result<(), MappingError> {
        let preset = self
            .preset
            .map(|p| {
                format!(
                    " (the {} preset does not know your question's column)",
                    p.name()
                )
            })
            .unwrap_or_default();
        if !self.mapping.fields.contains_key(&Field::Score) {
            return Err(MappingError::Missing(format!(
                "no score column{preset}: give --map score=COLUMN"
            )));
        }
        if !self.mapping.fields.contains_key(&Field::AnsweredAt) {
            return Err(MappingError::Missing(
                "no answer time column: give --map answered-at=COLUMN (imports keep each answer's original time)".into(),
            ));
        }
        if self.touchpoint.is_none() && !self.mapping.fields.contains_key(&Field::Touchpoint) {
            return Err(MappingError::Missing(
                "no touchpoint: give --touchpoint SLUG or --map touchpoint=COLUMN".into(),
            ));
        }
        if let Some(columns) = header {
            let names = || {
                let mut names: Vec<_> = columns.0.iter().collect();
                names.sort_by_key(|(_, i)| **i);
                clip(
                    &names
                        .iter()
                        .map(|(n, _)| format!("\"{n}\""))
                        .collect::<Vec<_>>()
                        .join(", "),
                    400,
                )
                .to_string()
            };
            for (field, column) in &self.mapping.fields {
                if !columns.0.contains_key(column) {
                    return Err(MappingError::NoSuchColumn {
                        field: field.name().into(),
                        column: column.clone(),
                        columns: names(),
                    });
                }
            }
            for column in &self.mapping.properties {
                if !columns.0.contains_key(column) {
                    return Err(MappingError::NoSuchColumn {
                        field: "properties".into(),
                        column: column.clone(),
                        columns: names(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Maps one raw row to an import row, or says why it cannot be.
    fn map(&self, raw: &RawRow, columns: &Columns) -> Result<ImportRow, String> {
        let get = |f: Field| {
            self.mapping
                .fields
                .get(&f)
                .and_then(|c| raw.get(columns, c))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let score = parse_score(&get(Field::Score).unwrap_or_default())?;
        let time = get(Field::AnsweredAt).unwrap_or_default();
        let answered_at = parse_time(&time, self.zone.as_ref()).map_err(|e| e.to_string())?;
        let touchpoint = match &self.touchpoint {
            Some(t) => t.clone(),
            None => get(Field::Touchpoint).ok_or("no touchpoint")?,
        };
        let zone = self.zone.clone().unwrap_or(TimeZone::UTC);
        let send = get(Field::Send).or_else(|| self.send.send_for(answered_at, &zone));
        let mut properties = BTreeMap::new();
        for column in &self.mapping.properties {
            raw.properties(columns, column, &mut properties);
        }
        Ok(ImportRow {
            id: get(Field::Id),
            respondent: get(Field::Respondent),
            touchpoint,
            score,
            comment: get(Field::Comment),
            answered_at,
            send,
            properties,
        })
    }
}

/// A row mapped and checked, waiting in the batch.
struct Pending {
    line: u64,
    row: ImportRow,
    raw: String,
    size: usize,
}

/// Reads the survey, then the file, and imports it; `rejects` gets `line,reason,row` for every
/// refused row, `progress` the rows read so far.
pub async fn import_file<R: BufRead, W: Write>(
    client: &ApiClient,
    plan: &ImportPlan,
    input: R,
    rejects: W,
    mut progress: impl FnMut(u64),
) -> Result<ImportSummary, ImportError> {
    let io = |e: std::io::Error| ImportError::Io(e.to_string());
    check_slug("survey", &plan.survey).map_err(MappingError::Missing)?;
    let survey: Survey = {
        let json = client
            .call(
                Method::GET,
                &format!("/v1/surveys/{}", path_segment(&plan.survey)),
                None,
            )
            .await?;
        let value = json.get("survey").cloned().unwrap_or(json);
        serde_json::from_value(value).map_err(|e| ImportError::Answer(e.to_string()))?
    };
    let mut rejects = csv::WriterBuilder::new().from_writer(rejects);
    rejects
        .write_record(["line", "reason", "row"])
        .map_err(|e| ImportError::Io(e.to_string()))?;
    let mut run = Run {
        client,
        plan,
        survey,
        summary: ImportSummary::default(),
        batch: Vec::with_capacity(MAX_IMPORT_ROWS),
        batch_bytes: 0,
        rejects,
    };
    match plan.format {
        Format::Csv => {
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(input);
            let mut header = csv::StringRecord::new();
            let got = reader
                .read_record(&mut header)
                .map_err(|e| ImportError::Io(format!("line 1: {e}")))?;
            if !got {
                return Err(ImportError::Empty);
            }
            let columns = Columns(
                header
                    .iter()
                    .enumerate()
                    // A UTF-8 byte order mark (Excel, Formbricks) is not part of the first name.
                    .map(|(i, h)| (h.trim_start_matches('\u{feff}').trim().to_string(), i))
                    .collect(),
            );
            plan.check(Some(&columns))?;
            let mut record = csv::StringRecord::new();
            loop {
                let line = reader.position().line();
                match reader.read_record(&mut record) {
                    Ok(false) => break,
                    Ok(true) => {
                        let line = record.position().map_or(line, |p| p.line());
                        if record.iter().all(|c| c.trim().is_empty()) {
                            continue;
                        }
                        run.row(line, RawRow::Csv(record.clone()), &columns).await?;
                    }
                    Err(e) => {
                        run.reject(line, format!("unreadable row: {e}"), String::new())?;
                    }
                }
                progress(run.summary.read);
            }
        }
        Format::JsonLines => {
            plan.check(None)?;
            let columns = Columns(BTreeMap::new());
            for (i, text) in input.lines().enumerate() {
                let line = i as u64 + 1;
                let text = text.map_err(io)?;
                if text.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<serde_json::Value>(&text) {
                    Ok(serde_json::Value::Array(items)) => {
                        for item in items {
                            run.row(line, RawRow::Json(item), &columns).await?;
                        }
                    }
                    Ok(v @ serde_json::Value::Object(_)) => {
                        run.row(line, RawRow::Json(v), &columns).await?;
                    }
                    Ok(_) => run.reject(line, "not a JSON object".into(), clip(&text, 2000))?,
                    Err(e) => {
                        run.reject(line, format!("unreadable JSON: {e}"), clip(&text, 2000))?
                    }
                }
                progress(run.summary.read);
            }
        }
    }
    run.flush().await?;
    progress(run.summary.read);
    run.rejects
        .flush()
        .map_err(|e| ImportError::Io(e.to_string()))?;
    Ok(run.summary)
}

/// The state of one run.
struct Run<'a, W: Write> {
    client: &'a ApiClient,
    plan: &'a ImportPlan,
    survey: Survey,
    summary: ImportSummary,
    batch: Vec<Pending>,
    batch_bytes: usize,
    rejects: csv::Writer<W>,
}

impl<W: Write> Run<'_, W> {
    fn reject(&mut self, line: u64, reason: String, row: String) -> Result<(), ImportError> {
        self.summary.read += 1;
        self.summary.refused += 1;
        self.rejects
            .write_record([line.to_string(), reason, row])
            .map_err(|e| ImportError::Io(e.to_string()))
    }

    async fn row(&mut self, line: u64, raw: RawRow, columns: &Columns) -> Result<(), ImportError> {
        let mapped = self.plan.map(&raw, columns).and_then(|row| {
            row.to_event(&self.survey, now_ms())
                .map(|_| row)
                .map_err(|e| e.0)
        });
        let row = match mapped {
            Ok(row) => row,
            Err(reason) => return self.reject(line, reason, raw.original()),
        };
        self.summary.read += 1;
        if self.plan.dry_run {
            self.count(&row.touchpoint);
            return Ok(());
        }
        let size = serde_json::to_vec(&row)
            .map(|v| v.len())
            .unwrap_or(CALL_BYTES);
        if self.batch.len() == MAX_IMPORT_ROWS || self.batch_bytes + size > CALL_BYTES {
            self.flush().await?;
        }
        self.batch_bytes += size + 1;
        self.batch.push(Pending {
            line,
            row,
            raw: raw.original(),
            size,
        });
        Ok(())
    }

    fn count(&mut self, touchpoint: &str) {
        self.summary.imported += 1;
        *self
            .summary
            .per_touchpoint
            .entry(touchpoint.to_string())
            .or_default() += 1;
    }

    /// Sends the batch (retrying a few times when the API is briefly unavailable: rows are
    /// idempotent) and records the API's refusals under their lines.
    async fn flush(&mut self) -> Result<(), ImportError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let rows: Vec<&ImportRow> = self.batch.iter().map(|p| &p.row).collect();
        let body = serde_json::json!({"survey": self.survey.id, "rows": rows});
        let mut attempt = 0;
        let answer = loop {
            match self
                .client
                .call(Method::POST, "/v1/imports", Some(body.clone()))
                .await
            {
                Ok(a) => break a,
                Err(e) if attempt < 4 && retryable(&e) => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
                }
                Err(e) => return Err(e.into()),
            }
        };
        let outcome: sondeo_http::imports::ImportOutcome =
            serde_json::from_value(answer).map_err(|e| ImportError::Answer(e.to_string()))?;
        let mut refused: BTreeMap<usize, String> = outcome
            .refused
            .into_iter()
            .map(|r| (r.row, r.reason))
            .collect();
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        for (i, p) in batch.into_iter().enumerate() {
            debug_assert!(p.size > 0);
            match refused.remove(&i) {
                Some(reason) => {
                    self.summary.refused += 1;
                    self.rejects
                        .write_record([p.line.to_string(), reason, p.raw])
                        .map_err(|e| ImportError::Io(e.to_string()))?;
                }
                None => self.count(&p.row.touchpoint),
            }
        }
        if let ApiClient::Local(stack) = self.client {
            // Local mode: apply what was queued now, so the import is visible when it ends
            // (and the queue stays small) even without `sondeo serve` running.
            while crate::server::drain_once(stack).await > 0 {}
        }
        Ok(())
    }
}

/// Whether a failed call may succeed if sent again.
fn retryable(e: &ClientError) -> bool {
    match e {
        ClientError::Api { status, .. } => status.is_server_error() || status.as_u16() == 429,
        ClientError::Transport(_) => true,
        ClientError::Url(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(names: &[&str]) -> Columns {
        Columns(
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.to_string(), i))
                .collect(),
        )
    }

    fn plan(mapping: Mapping) -> ImportPlan {
        ImportPlan {
            survey: "nps".into(),
            touchpoint: Some("support".into()),
            mapping,
            zone: None,
            send: SendRule::Default,
            format: Format::Csv,
            dry_run: false,
            preset: None,
        }
    }

    #[test]
    fn map_flags_override_a_preset_and_properties_add_up() {
        let mut m = Preset::Typeform.mapping();
        m.apply([
            "score=How likely?",
            "respondent = email",
            "properties=plan,Country Code",
            "# note",
            "",
        ])
        .unwrap();
        assert_eq!(m.fields[&Field::Score], "How likely?");
        assert_eq!(m.fields[&Field::Respondent], "email");
        assert_eq!(m.fields[&Field::Id], "#");
        assert_eq!(m.properties, ["plan", "Country Code"]);
        assert_eq!(property_name("Country Code"), "country-code");
    }

    #[test]
    fn mapping_errors_name_what_is_wrong() {
        let mut m = Mapping::default();
        assert!(matches!(m.apply(["score"]), Err(MappingError::Syntax(_))));
        assert!(matches!(
            m.apply(["mood=x"]),
            Err(MappingError::UnknownField(_))
        ));
        let p = ImportPlan {
            preset: Some(Preset::Typeform),
            ..plan(Preset::Typeform.mapping())
        };
        let e = p
            .check(Some(&columns(&["#", "Submit Date (UTC)"])))
            .unwrap_err();
        assert!(e.to_string().contains("typeform preset"), "{e}");
        let mut m = Preset::Typeform.mapping();
        m.apply(["score=NPS"]).unwrap();
        let e = plan(m)
            .check(Some(&columns(&["#", "Submit Date (UTC)"])))
            .unwrap_err();
        assert!(
            matches!(&e, MappingError::NoSuchColumn { column, .. } if column == "NPS"),
            "{e}"
        );
        let mut m = Mapping::default();
        m.apply(["score=s", "answered-at=t"]).unwrap();
        let no_touchpoint = ImportPlan {
            touchpoint: None,
            ..plan(m)
        };
        assert!(no_touchpoint
            .check(None)
            .unwrap_err()
            .to_string()
            .contains("touchpoint"));
        assert!(Preset::parse("qualtrics").is_err());
    }

    #[test]
    fn rows_map_with_scores_times_and_properties() {
        let mut m = Mapping::default();
        m.apply(["score=s", "answered-at=t", "id=i", "properties=Plan"])
            .unwrap();
        let p = ImportPlan {
            send: SendRule::PerQuarter,
            ..plan(m)
        };
        let cols = columns(&["i", "s", "t", "Plan"]);
        let raw = RawRow::Csv(csv::StringRecord::from(vec![
            "r1",
            "9.0",
            "2024-05-01T10:00:00Z",
            "Pro",
        ]));
        let row = p.map(&raw, &cols).unwrap();
        assert_eq!(row.score, 9);
        assert_eq!(row.id.as_deref(), Some("r1"));
        assert_eq!(row.send.as_deref(), Some("2024-Q2"));
        assert_eq!(row.properties["plan"], "Pro");
        let bad = RawRow::Csv(csv::StringRecord::from(vec![
            "r2",
            "",
            "2024-05-01T10:00:00Z",
            "",
        ]));
        assert_eq!(p.map(&bad, &cols).unwrap_err(), "no score");
        let naive = RawRow::Csv(csv::StringRecord::from(vec![
            "r3",
            "5",
            "2024-05-01 10:00",
            "",
        ]));
        assert!(p.map(&naive, &cols).unwrap_err().contains("--tz"));
    }

    #[test]
    fn json_rows_read_nested_keys_and_property_objects() {
        let p = plan(Preset::DelightedJson.mapping());
        let cols = Columns(BTreeMap::new());
        let raw = RawRow::Json(serde_json::json!({
            "id": "3605", "person": {"id": "2", "email": "ana@example.com"}, "score": 10,
            "comment": null, "created_at": 1710081000, "person_properties": {"Plan": "Pro"}
        }));
        let row = p.map(&raw, &cols).unwrap();
        assert_eq!(row.respondent.as_deref(), Some("ana@example.com"));
        assert_eq!(row.comment, None);
        assert_eq!(row.answered_at, 1_710_081_000_000);
        assert_eq!(row.properties["plan"], "Pro");
    }
}
