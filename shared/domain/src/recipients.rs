//! Mail-merge recipient lists: a recipients CSV in, the same rows with each recipient's signed
//! links out, ready for an email tool's import.

use crate::response::{check_respondent, suppression_id};
use crate::survey::Survey;
use crate::token::{LinkClaims, LinkKeyring, LinkScope};
use std::collections::{HashMap, HashSet};
use std::io::Write;

/// Column names taken as the respondent id when none is named, in order of preference.
pub const ID_COLUMNS: &[&str] = &[
    "id",
    "respondent",
    "respondent_id",
    "customer_id",
    "contact_id",
    "email",
    "email_address",
];
/// Most columns a recipients file may have.
pub const MAX_COLUMNS: usize = 200;
/// Most row errors kept for the report (all are counted).
pub const MAX_ROW_ERRORS_KEPT: usize = 1000;
/// The column the API adds to say why a row got no links (empty when it got them).
pub const ERROR_COLUMN: &str = "sondeo_error";

/// Why a recipients file cannot be used at all.
#[derive(Debug, thiserror::Error)]
pub enum RecipientsError {
    /// The file has no header line.
    #[error("the recipients file is empty: it needs a header line naming its columns")]
    Empty,
    /// The header cannot be read.
    #[error("the header line cannot be read: {0}")]
    Header(String),
    /// No column holds the respondent id.
    #[error("{0}")]
    NoIdColumn(String),
    /// The file has more rows than one call takes.
    #[error("the file has more than {0} recipient rows; split it (the sondeo CLI does)")]
    TooManyRows(u64),
    /// Reading the input or writing the output failed.
    #[error("{0}")]
    Io(String),
}

/// A row that got no links, with its line in the file (1 is the header).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RowError {
    /// Line number where the row starts.
    pub line: u64,
    /// Why it got no links.
    pub message: String,
}

/// How a row's links appear in the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkColumns {
    /// The answer page and one URL per score (`score_0` … `score_10` for NPS).
    Urls {
        /// Base URL of the collect routes, without a trailing slash.
        base: String,
    },
    /// One `token` column; links are `{base}/r/{token}?score=N`.
    Token,
}

/// Mints the links of one survey touchpoint for any number of recipients.
pub struct Minter<'a> {
    /// Signing keys.
    pub keyring: &'a LinkKeyring,
    /// The survey the links answer.
    pub survey: &'a Survey,
    /// Touchpoint slug (checked against the survey by the caller).
    pub touchpoint: &'a str,
    /// The send the links belong to (checked by the caller; empty: the default send).
    pub send: String,
    /// Respondents on the suppression list (in `suppression_id` form): they get no links.
    pub suppressed: HashSet<String>,
    /// Issue time, Unix seconds.
    pub issued_at: i64,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
    /// What the output carries.
    pub links: LinkColumns,
}

/// The names of the columns the links of `survey` take in the output.
pub fn link_header(survey: &Survey, links: &LinkColumns) -> Vec<String> {
    match links {
        LinkColumns::Token => vec!["token".into()],
        LinkColumns::Urls { .. } => {
            let mut names = vec!["survey_url".to_string()];
            if survey.kind.is_discrete() {
                let (min, max) = survey.kind.range();
                names.extend((min..=max).map(|s| format!("score_{s}")));
            }
            names
        }
    }
}

/// Whether `name` is a column an output of this tool holds, in either link format (any case).
fn is_link_column(name: &str) -> bool {
    let name = name.trim().to_ascii_lowercase();
    matches!(name.as_str(), "token" | "survey_url" | ERROR_COLUMN)
        || name
            .strip_prefix("score_")
            .is_some_and(|n| !n.is_empty() && n.len() <= 2 && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The columns the output adds after the recipient's own: the links, then the reason column
/// when bad rows are explained.
pub fn added_columns(survey: &Survey, links: &LinkColumns, bad_rows: BadRows) -> Vec<String> {
    let mut names = link_header(survey, links);
    if bad_rows == BadRows::Explain {
        names.push(ERROR_COLUMN.to_string());
    }
    names
}

impl Minter<'_> {
    /// The names of the columns the links take.
    pub fn link_header(&self) -> Vec<String> {
        link_header(self.survey, &self.links)
    }

    /// The link columns of one respondent.
    pub fn links_for(&self, respondent: &str) -> Result<Vec<String>, String> {
        check_respondent(respondent).map_err(|e| e.0)?;
        if self.suppressed.contains(&suppression_id(respondent)) {
            return Err("unsubscribed: this recipient is on the suppression list".into());
        }
        let token = self
            .keyring
            .sign_scoped(
                &LinkClaims {
                    survey: self.survey.id.clone(),
                    touchpoint: self.touchpoint.to_string(),
                    respondent: respondent.to_string(),
                    issued_at: self.issued_at,
                    expires_at: self.expires_at,
                },
                &LinkScope {
                    send: self.send.clone(),
                    campaign: false,
                },
            )
            .map_err(|e| e.to_string())?;
        Ok(match &self.links {
            LinkColumns::Token => vec![token],
            LinkColumns::Urls { base } => {
                let page = format!("{base}/r/{token}");
                let mut out = Vec::with_capacity(12);
                if self.survey.kind.is_discrete() {
                    let (min, max) = self.survey.kind.range();
                    out.extend((min..=max).map(|s| format!("{page}?score={s}")));
                }
                out.insert(0, page);
                out
            }
        })
    }
}

/// What a run over a recipients file did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MintSummary {
    /// Rows that got links.
    pub minted: u64,
    /// Rows that did not (every one is counted in `rejected`; the first ones are kept here).
    pub errors: Vec<RowError>,
    /// Number of rows that did not get links.
    pub rejected: u64,
}

impl MintSummary {
    fn reject(&mut self, line: u64, message: String) {
        self.rejected += 1;
        if self.errors.len() < MAX_ROW_ERRORS_KEPT {
            self.errors.push(RowError { line, message });
        }
    }
}

/// What the output holds for rows that got no links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRows {
    /// Left out (the file is for an email tool).
    Omit,
    /// Kept with empty link columns and the reason in [`ERROR_COLUMN`] (the API's answer).
    Explain,
}

/// The recipients file's columns and which one holds the respondent id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    /// Column names as in the header (trimmed, BOM removed).
    pub names: Vec<String>,
    /// Index of the respondent id column.
    pub id: usize,
}

impl Columns {
    /// Finds the id column: the one named `wanted`, or the first of [`ID_COLUMNS`] present.
    pub fn find(names: Vec<String>, wanted: Option<&str>) -> Result<Columns, RecipientsError> {
        if names.len() > MAX_COLUMNS {
            return Err(RecipientsError::Header(format!(
                "it has {} columns; the limit is {MAX_COLUMNS}",
                names.len()
            )));
        }
        // A name twice would leave an email tool (and the id lookup) to pick one of them.
        for (i, name) in names.iter().enumerate().filter(|(_, n)| !n.is_empty()) {
            if let Some(twin) = names[..i].iter().find(|n| n.eq_ignore_ascii_case(name)) {
                let spelled = if twin == name {
                    String::new()
                } else {
                    format!(" (as '{}')", crate::survey::clip(twin, 64))
                };
                return Err(RecipientsError::Header(format!(
                    "the column '{}' appears twice{spelled}: give each column its own name",
                    crate::survey::clip(name, 64)
                )));
            }
        }
        let position = |name: &str| names.iter().position(|n| n.eq_ignore_ascii_case(name));
        let id = match wanted {
            Some(w) => position(w).ok_or_else(|| {
                RecipientsError::NoIdColumn(format!(
                    "there is no column '{}' (the columns are: {})",
                    crate::survey::clip(w, 64),
                    names.join(", ")
                ))
            })?,
            None => ID_COLUMNS.iter().find_map(|c| position(c)).ok_or_else(|| {
                RecipientsError::NoIdColumn(format!(
                    "no column holds the respondent id: name one of {} or pass the column's name \
                     (the columns are: {})",
                    ID_COLUMNS.join(", "),
                    names.join(", ")
                ))
            })?,
        };
        Ok(Columns { names, id })
    }

    /// The indexes of the columns the output keeps: all but those named like one of `added` or
    /// like any column links take in either format (any case: an earlier output's `token`,
    /// `survey_url`, `score_N`, `sondeo_error`), which the fresh links replace. Refused when that
    /// would drop the id column.
    pub fn kept(&self, added: &[String]) -> Result<Vec<usize>, RecipientsError> {
        let replaced =
            |name: &str| is_link_column(name) || added.iter().any(|a| a.eq_ignore_ascii_case(name));
        let id_name = self.names.get(self.id).map_or("", String::as_str);
        if replaced(id_name) {
            return Err(RecipientsError::Header(format!(
                "the id column '{}' has the name of a column the links take: rename it",
                crate::survey::clip(id_name, 64)
            )));
        }
        Ok((0..self.names.len())
            .filter(|&i| !replaced(&self.names[i]))
            .collect())
    }

    /// The respondent id of a row that can get links (text, as many fields as the header, an
    /// id), trimmed; `None` for a row [`mint_csv`] reports as bad.
    pub fn respondent<'r>(&self, record: &'r csv::ByteRecord) -> Option<&'r str> {
        check_row(record, self)
            .ok()
            .and_then(|fields| fields.get(self.id).map(|id| id.trim()))
    }
}

/// The recipients already given links in one file, to refuse a second row for the same person
/// (ids compared as the suppression list does: trimmed, emails in any case).
#[derive(Debug, Default)]
pub struct SeenRecipients {
    first_line: HashMap<String, u64>,
}

impl SeenRecipients {
    /// Records `id` as first seen on `line`, or says on which line it already appeared.
    pub fn claim(&mut self, id: &str, line: u64) -> Result<(), String> {
        match self.first_line.entry(suppression_id(id)) {
            std::collections::hash_map::Entry::Occupied(first) => Err(format!(
                "{} already appears on line {}",
                crate::survey::clip(id.trim(), 200),
                first.get()
            )),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(line);
                Ok(())
            }
        }
    }
}

/// Where a byte leaves the CSV reader, as far as quotes go (the reader's own rules: a field
/// that starts with `"` runs to the next lone `"`, `""` inside it is one quote, a `"` later in an
/// unquoted field is plain text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quoting {
    /// At the start of a field (or of a record).
    FieldStart,
    /// In a field that did not start with a quote.
    Unquoted,
    /// Inside a quoted field.
    Quoted,
    /// Just after a `"` inside a quoted field: its end, or the first half of `""`.
    QuoteInQuoted,
}

/// A quoted field still open when the input ended: the reader took everything after it as
/// that field's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenQuote {
    /// Line of the quote that opened the field.
    pub opened_on: u64,
    /// Last line of the input with any text on it.
    pub last_line: u64,
}

impl OpenQuote {
    /// Why the row that starts on `row_line` gets no links, naming the lines it swallowed.
    pub fn reason(&self, row_line: u64) -> String {
        let opened = if self.opened_on == row_line {
            "this line".to_string()
        } else {
            format!("line {}", self.opened_on)
        };
        let swallowed = match self.last_line.saturating_sub(self.opened_on) {
            0 => String::new(),
            1 => format!(
                "; it swallowed line {}, which got no links either",
                self.last_line
            ),
            _ => format!(
                "; it swallowed lines {} to {}, which got no links either",
                self.opened_on + 1,
                self.last_line
            ),
        };
        format!("a quoted field opened on {opened} is never closed (missing \"){swallowed}")
    }
}

/// Line numbers of the records of a CSV, counting the empty lines the reader skips, and the
/// reader's quoting state over the bytes read so far (to catch a quote never closed without
/// reading ahead).
#[derive(Debug, Clone)]
pub struct Lines<'a> {
    input: &'a [u8],
    offset: usize,
    line: u64,
    quoting: Quoting,
    quote_line: u64,
    last_text_line: u64,
    after_cr: bool,
}

impl<'a> Lines<'a> {
    /// Starts at the first line of `input`.
    pub fn new(input: &'a [u8]) -> Lines<'a> {
        Lines {
            input,
            offset: 0,
            line: 1,
            quoting: Quoting::FieldStart,
            quote_line: 1,
            last_text_line: 0,
            after_cr: false,
        }
    }

    /// The line of the first character at or after byte `from` that is not a line end: where a
    /// record the reader started reading at `from` begins.
    pub fn record_line(&mut self, from: u64) -> u64 {
        self.advance(from);
        while let Some(&b) = self.input.get(self.offset) {
            if b != b'\n' && b != b'\r' {
                break;
            }
            self.step(b);
            self.offset += 1;
        }
        self.line
    }

    /// After the reader stopped at byte `end` (the end of the record it just read): the quoted
    /// field left open, when the record ran to the end of the input inside one.
    pub fn open_quote(&mut self, end: u64) -> Option<OpenQuote> {
        self.advance(end);
        (self.offset >= self.input.len() && self.quoting == Quoting::Quoted).then_some(OpenQuote {
            opened_on: self.quote_line,
            last_line: self.last_text_line,
        })
    }

    /// Reads the bytes up to `to`.
    fn advance(&mut self, to: u64) {
        let to = usize::try_from(to)
            .unwrap_or(usize::MAX)
            .min(self.input.len());
        while self.offset < to {
            if let Some(&b) = self.input.get(self.offset) {
                self.step(b);
            }
            self.offset += 1;
        }
    }

    /// Reads one byte: its line, and where it leaves the quoting.
    fn step(&mut self, b: u8) {
        self.quoting = match (self.quoting, b) {
            (Quoting::Quoted, b'"') => Quoting::QuoteInQuoted,
            (Quoting::Quoted, _) => Quoting::Quoted,
            (Quoting::QuoteInQuoted, b'"') => Quoting::Quoted,
            (Quoting::FieldStart, b'"') => {
                self.quote_line = self.line;
                Quoting::Quoted
            }
            (_, b',' | b'\r' | b'\n') => Quoting::FieldStart,
            _ => Quoting::Unquoted,
        };
        // A line ends with `\n`, `\r\n` or a lone `\r` (old Mac files), as the reader's do.
        match b {
            b'\n' if self.after_cr => {}
            b'\n' | b'\r' => self.line += 1,
            _ => self.last_text_line = self.line,
        }
        self.after_cr = b == b'\r';
    }
}

/// Reads a recipients CSV (UTF-8, optional BOM, quoted fields, empty lines skipped) and writes
/// each row with its links, refusing more than `max_rows` rows; `progress` is called with the
/// number of rows read so far. Input columns named like an added column (a link column, or
/// [`ERROR_COLUMN`] when bad rows are explained) are left out: the fresh links replace them.
/// A recipient's second row, and a row whose quoted field is never closed, get no links.
pub fn mint_csv<W: Write>(
    input: &[u8],
    output: W,
    minter: &Minter<'_>,
    id_column: Option<&str>,
    bad_rows: BadRows,
    max_rows: Option<u64>,
    mut progress: impl FnMut(u64),
) -> Result<MintSummary, RecipientsError> {
    let mut reader = reader(input);
    let mut writer = csv::WriterBuilder::new().from_writer(output);
    let mut lines = Lines::new(input);
    let io = |e: csv::Error| RecipientsError::Io(e.to_string());
    let mut record = csv::ByteRecord::new();
    let columns = read_header(&mut reader, &mut lines, id_column)?;
    let link_header = minter.link_header();
    let added = added_columns(minter.survey, &minter.links, bad_rows);
    let kept = columns.kept(&added)?;
    let mut out_header: Vec<&str> = kept.iter().map(|&i| columns.names[i].as_str()).collect();
    out_header.extend(added.iter().map(String::as_str));
    writer.write_record(&out_header).map_err(io)?;
    let mut summary = MintSummary::default();
    let mut seen = SeenRecipients::default();
    let mut rows = 0u64;
    let width = columns.names.len();
    loop {
        let line = lines.record_line(reader.position().byte());
        let outcome = match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                rows += 1;
                if max_rows.is_some_and(|max| rows > max) {
                    return Err(RecipientsError::TooManyRows(rows - 1));
                }
                if let Some(open) = lines.open_quote(reader.position().byte()) {
                    // The last field holds the rest of the file: it is not written back.
                    let read = record.len().saturating_sub(1);
                    let fields: Vec<&str> = record
                        .iter()
                        .take(read)
                        .map(|f| std::str::from_utf8(f).unwrap_or(""))
                        .collect();
                    Err((fields, open.reason(line)))
                } else {
                    check_row(&record, &columns)
                        .and_then(|fields| {
                            let id = fields.get(columns.id).map_or("", |f| f.trim());
                            match seen.claim(id, line) {
                                Ok(()) => Ok(fields),
                                Err(why) => Err((fields, why)),
                            }
                        })
                        .and_then(|fields| {
                            let id = fields.get(columns.id).map_or("", |f| f.trim());
                            match minter.links_for(id) {
                                Ok(links) => Ok((fields, links)),
                                Err(why) => Err((fields, why)),
                            }
                        })
                }
            }
            // A row the CSV reader cannot take (it reads on from the next line).
            Err(e) => {
                rows += 1;
                Err((Vec::new(), format!("unreadable row: {e}")))
            }
        };
        match &outcome {
            Ok((fields, links)) => {
                summary.minted += 1;
                let mut out = kept_fields(&kept, fields);
                out.extend(links.iter().map(String::as_str));
                if bad_rows == BadRows::Explain {
                    out.push("");
                }
                writer.write_record(&out).map_err(io)?;
            }
            Err(_) if bad_rows == BadRows::Omit => {}
            Err((fields, why)) => {
                // The row as the header's columns (a row with too many or too few fields is
                // cut or padded: its reason says so), empty links, then the reason.
                let mut out = kept_fields(&kept, &fields[..fields.len().min(width)]);
                out.extend(link_header.iter().map(|_| ""));
                out.push(why);
                writer.write_record(&out).map_err(io)?;
            }
        }
        if let Err((_, why)) = outcome {
            summary.reject(line, why);
        }
        if rows % 1024 == 0 {
            progress(rows);
        }
    }
    progress(rows);
    writer
        .flush()
        .map_err(|e| RecipientsError::Io(e.to_string()))?;
    Ok(summary)
}

/// The fields at the `kept` indexes (an index past the row's end gives an empty field).
fn kept_fields<'r>(kept: &[usize], fields: &[&'r str]) -> Vec<&'r str> {
    kept.iter()
        .map(|&i| fields.get(i).copied().unwrap_or(""))
        .collect()
}

/// The CSV reader every pass over a recipients file uses.
fn reader(input: &[u8]) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input)
}

/// The column names of a header record: trimmed, the byte-order mark removed.
pub fn header_names(header: &csv::ByteRecord) -> Result<Vec<String>, RecipientsError> {
    header
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let f = if i == 0 {
                f.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(f)
            } else {
                f
            };
            std::str::from_utf8(f)
                .map(|s| s.trim().to_string())
                .map_err(|_| RecipientsError::Header("it is not UTF-8".into()))
        })
        .collect()
}

/// Reads the header (the first line that is not blank) and finds the id column.
fn read_header(
    reader: &mut csv::Reader<&[u8]>,
    lines: &mut Lines<'_>,
    id_column: Option<&str>,
) -> Result<Columns, RecipientsError> {
    let mut record = csv::ByteRecord::new();
    let header = loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => return Err(RecipientsError::Empty),
            Ok(true) if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) => continue,
            Ok(true) => break record,
            Err(e) => return Err(RecipientsError::Header(e.to_string())),
        }
    };
    if let Some(open) = lines.open_quote(reader.position().byte()) {
        return Err(RecipientsError::Header(format!(
            "a quoted field opened on line {} is never closed (missing \")",
            open.opened_on
        )));
    }
    Columns::find(header_names(&header)?, id_column)
}

/// Checks a recipients file before any link is minted (its header, its id column, that no input
/// column to be replaced by `added` is the id, at most `max_rows` rows) and returns the
/// respondent ids of its rows, to look up in the suppression list.
pub fn recipient_ids(
    input: &[u8],
    id_column: Option<&str>,
    added: &[String],
    max_rows: Option<u64>,
) -> Result<Vec<String>, RecipientsError> {
    let mut reader = reader(input);
    let columns = read_header(&mut reader, &mut Lines::new(input), id_column)?;
    columns.kept(added)?;
    let mut record = csv::ByteRecord::new();
    let mut ids = Vec::new();
    let mut rows = 0u64;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                if let Some(id) = record
                    .get(columns.id)
                    .and_then(|f| std::str::from_utf8(f).ok())
                    .map(str::trim)
                    .filter(|id| !id.is_empty())
                {
                    ids.push(id.to_string());
                }
            }
            Err(_) => {}
        }
        rows += 1;
        if max_rows.is_some_and(|max| rows > max) {
            return Err(RecipientsError::TooManyRows(rows - 1));
        }
    }
    Ok(ids)
}

/// The row's fields as text, or why it cannot be used (with whatever fields could be read).
fn check_row<'r>(
    record: &'r csv::ByteRecord,
    columns: &Columns,
) -> Result<Vec<&'r str>, (Vec<&'r str>, String)> {
    let fields: Vec<Option<&str>> = record.iter().map(|f| std::str::from_utf8(f).ok()).collect();
    let readable: Vec<&str> = fields.iter().map(|f| f.unwrap_or("")).collect();
    if let Some(i) = fields.iter().position(Option::is_none) {
        let name = columns.names.get(i).map_or("?", String::as_str);
        return Err((readable, format!("column '{name}' is not UTF-8 text")));
    }
    if readable.len() != columns.names.len() {
        return Err((
            readable.clone(),
            format!(
                "it has {} fields; the header has {} (a comma inside a value needs quotes)",
                readable.len(),
                columns.names.len()
            ),
        ));
    }
    if readable[columns.id].trim().is_empty() {
        let why = format!("no respondent id in column '{}'", columns.names[columns.id]);
        return Err((readable, why));
    }
    Ok(readable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::survey::{Locale, SurveyKind, Touchpoint};

    fn survey() -> Survey {
        Survey {
            id: "nps".into(),
            kind: SurveyKind::Nps,
            question: "How likely?".into(),
            follow_up: String::new(),
            locale: Locale::En,
            touchpoints: vec![Touchpoint {
                slug: "q4".into(),
                stage: None,
            }],
            public_key: None,
            brand: None,
            frequency_cap_days: None,
        }
    }

    fn run(input: &str, links: LinkColumns, bad: BadRows) -> (String, MintSummary) {
        let ring = LinkKeyring::from_spec("k1:0123456789abcdef0123456789abcdef-csv").unwrap();
        let s = survey();
        let minter = Minter {
            keyring: &ring,
            survey: &s,
            touchpoint: "q4",
            send: String::new(),
            suppressed: HashSet::new(),
            issued_at: 1_790_000_000,
            expires_at: 1_790_086_400,
            links,
        };
        let mut out = Vec::new();
        let summary =
            mint_csv(input.as_bytes(), &mut out, &minter, None, bad, None, |_| {}).unwrap();
        (String::from_utf8(out).unwrap(), summary)
    }

    /// A minter of token columns for survey `s` at touchpoint q4.
    fn token_minter<'a>(ring: &'a LinkKeyring, s: &'a Survey) -> Minter<'a> {
        Minter {
            keyring: ring,
            survey: s,
            touchpoint: "q4",
            send: String::new(),
            suppressed: HashSet::new(),
            issued_at: 1,
            expires_at: 2,
            links: LinkColumns::Token,
        }
    }

    fn urls() -> LinkColumns {
        LinkColumns::Urls {
            base: "https://s.example".into(),
        }
    }

    fn rows(out: &str) -> Vec<Vec<String>> {
        csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(out.as_bytes())
            .records()
            .map(|r| r.unwrap().iter().map(str::to_string).collect())
            .collect()
    }

    #[test]
    fn quoted_fields_utf8_a_bom_and_empty_lines_come_through_with_eleven_links() {
        let input = "\u{feff}email,name,plan\r\n\r\nana@example.com,\"López, Ana\",pro\n\n\"bo@example.com\",\"Bo \"\"the\"\" Ñandú\",\"multi\nline\"\n";
        let (out, summary) = run(input, urls(), BadRows::Omit);
        assert_eq!(
            summary,
            MintSummary {
                minted: 2,
                errors: vec![],
                rejected: 0
            }
        );
        let rows = rows(&out);
        assert_eq!(rows.len(), 3);
        assert_eq!(&rows[0][..4], ["email", "name", "plan", "survey_url"]);
        assert_eq!(rows[0][4], "score_0");
        assert_eq!(rows[0].last().unwrap(), "score_10");
        assert_eq!(rows[0].len(), 3 + 1 + 11);
        assert_eq!(&rows[1][..3], ["ana@example.com", "López, Ana", "pro"]);
        assert_eq!(
            &rows[2][..3],
            ["bo@example.com", "Bo \"the\" Ñandú", "multi\nline"]
        );
        let ring = LinkKeyring::from_spec("k1:0123456789abcdef0123456789abcdef-csv").unwrap();
        for (row, who) in [(&rows[1], "ana@example.com"), (&rows[2], "bo@example.com")] {
            let page = &row[3];
            let token = page.strip_prefix("https://s.example/r/").unwrap();
            let claims = ring.verify(token, 1_790_000_100).unwrap();
            assert_eq!(
                (claims.respondent.as_str(), claims.touchpoint.as_str()),
                (who, "q4")
            );
            for s in 0..=10 {
                assert_eq!(row[4 + s], format!("{page}?score={s}"));
            }
        }
    }

    #[test]
    fn a_bad_row_in_the_middle_is_reported_with_its_line_and_the_rest_still_get_links() {
        let input = "id,name\na,Ana\n,No id\nb,Bo,extra\nd,Di\n";
        let crlf_and_gaps = "id,name\r\n\r\na,Ana\r\n\n\n,No id\r\n\"b\",\"B\no\",x\r\nd,Di";
        let (_, summary) = run(crlf_and_gaps, LinkColumns::Token, BadRows::Omit);
        let lines: Vec<u64> = summary.errors.iter().map(|e| e.line).collect();
        assert_eq!((summary.minted, lines), (2, vec![6, 7]), "{summary:?}");
        let (out, summary) = run(input, LinkColumns::Token, BadRows::Omit);
        assert_eq!(summary.minted, 2, "{summary:?}");
        assert_eq!(summary.rejected, 2);
        assert_eq!(summary.errors[0].line, 3);
        assert!(
            summary.errors[0].message.contains("no respondent id"),
            "{summary:?}"
        );
        assert_eq!(summary.errors[1].line, 4);
        assert!(
            summary.errors[1].message.contains("3 fields"),
            "{summary:?}"
        );
        let rows = rows(&out);
        assert_eq!(rows[0], ["id", "name", "token"]);
        assert_eq!(
            (rows[1][0].as_str(), rows[2][0].as_str(), rows.len()),
            ("a", "d", 3)
        );
    }

    #[test]
    fn the_api_keeps_bad_rows_in_place_with_their_reason() {
        let input = "Customer_ID,plan\nx1,pro\n\u{7},free\nx3,pro,extra\nx4,pro\n";
        let (out, summary) = run(input, urls(), BadRows::Explain);
        assert_eq!((summary.minted, summary.rejected), (2, 2));
        let rows = rows(&out);
        assert_eq!(rows[0].last().unwrap(), ERROR_COLUMN);
        assert_eq!(rows.len(), 5);
        assert!(rows.iter().all(|r| r.len() == 2 + 12 + 1), "{rows:?}");
        assert_eq!(rows[3][..2], ["x3", "pro"]);
        assert!(
            rows[3].last().unwrap().contains("3 fields"),
            "{:?}",
            rows[3]
        );
        assert!(rows[1].last().unwrap().is_empty());
        assert!(rows[2][2..14].iter().all(String::is_empty));
        assert!(
            rows[2].last().unwrap().contains("printable"),
            "{:?}",
            rows[2]
        );
        assert_eq!(rows[4][0], "x4");
    }

    #[test]
    fn invalid_utf8_is_a_row_error_not_a_failure() {
        let mut input = b"email\nana@example.com\n".to_vec();
        input.extend_from_slice(b"bad\xff@example.com\nbo@example.com\n");
        let ring = LinkKeyring::from_spec("k1:0123456789abcdef0123456789abcdef-csv").unwrap();
        let s = survey();
        let minter = token_minter(&ring, &s);
        let mut out = Vec::new();
        let summary = mint_csv(
            &input[..],
            &mut out,
            &minter,
            None,
            BadRows::Omit,
            None,
            |_| {},
        )
        .unwrap();
        assert_eq!((summary.minted, summary.rejected), (2, 1));
        assert_eq!(summary.errors[0].line, 3);
        assert!(summary.errors[0].message.contains("UTF-8"));
    }

    #[test]
    fn the_id_column_is_found_or_named_and_a_missing_one_lists_the_columns() {
        let cols = |h: &[&str]| h.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(Columns::find(cols(&["name", "Email"]), None).unwrap().id, 1);
        assert_eq!(Columns::find(cols(&["email", "id"]), None).unwrap().id, 1);
        assert_eq!(
            Columns::find(cols(&["a", "member"]), Some("MEMBER"))
                .unwrap()
                .id,
            1
        );
        let e = Columns::find(cols(&["name", "plan"]), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("name, plan") && e.contains("email"), "{e}");
        let e = Columns::find(cols(&["name"]), Some("uid"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("'uid'"), "{e}");
        let (ring, s) = (
            LinkKeyring::from_spec("k1:0123456789abcdef0123456789abcdef-csv").unwrap(),
            survey(),
        );
        let minter = token_minter(&ring, &s);
        let empty = mint_csv(
            b"\n\n",
            Vec::new(),
            &minter,
            None,
            BadRows::Omit,
            None,
            |_| {},
        );
        assert!(matches!(empty, Err(RecipientsError::Empty)));
    }

    #[test]
    fn a_hundred_thousand_rows_get_links() {
        let mut input = String::from("email,first_name\n");
        for i in 0..100_000 {
            input.push_str(&format!("person{i}@example.com,Name {i}\n"));
        }
        let mut seen = 0;
        let (out, summary) = {
            let ring = LinkKeyring::from_spec("k1:0123456789abcdef0123456789abcdef-csv").unwrap();
            let s = survey();
            let minter = token_minter(&ring, &s);
            let mut out = Vec::new();
            let summary = mint_csv(
                input.as_bytes(),
                &mut out,
                &minter,
                None,
                BadRows::Omit,
                None,
                |n| seen = n,
            )
            .unwrap();
            (out, summary)
        };
        assert_eq!(
            (summary.minted, summary.rejected, seen),
            (100_000, 0, 100_000)
        );
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 100_001);
    }

    #[test]
    fn a_quoted_field_never_closed_is_a_bad_row_naming_the_lines_it_swallowed() {
        // The acceptance repro: c@x.com must not vanish into b's name.
        let input = "email,name\na@x.com,A\nb@x.com,\"B\nc@x.com,C\n";
        let (out, summary) = run(input, LinkColumns::Token, BadRows::Omit);
        assert_eq!((summary.minted, summary.rejected), (1, 1), "{summary:?}");
        assert_eq!(summary.errors[0].line, 3);
        assert_eq!(
            summary.errors[0].message,
            "a quoted field opened on this line is never closed (missing \"); it swallowed \
             line 4, which got no links either"
        );
        assert_eq!(rows(&out).len(), 2, "{out}");

        // Through the API's form the row keeps its place, without the swallowed text.
        let crlf = "email,name\r\na@x.com,A\r\nb@x.com,\"B\r\nc@x.com,C\r\n\r\nd@x.com,D\r\n";
        let (out, summary) = run(crlf, urls(), BadRows::Explain);
        assert_eq!((summary.minted, summary.rejected), (1, 1), "{summary:?}");
        let rows = rows(&out);
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert_eq!(rows[2][..2], ["b@x.com", ""]);
        assert!(rows[2][2..14].iter().all(String::is_empty), "{rows:?}");
        assert!(
            rows[2][14].ends_with("it swallowed lines 4 to 6, which got no links either"),
            "{rows:?}"
        );
    }

    #[test]
    fn lines_ended_by_a_lone_carriage_return_are_counted() {
        let input = "email,name\ra@x.com,A\r\rb@x.com,\"B\rc@x.com,C\r";
        let (_, summary) = run(input, LinkColumns::Token, BadRows::Omit);
        assert_eq!(summary.minted, 1);
        assert_eq!(summary.errors[0].line, 4, "{summary:?}");
        assert!(
            summary.errors[0]
                .message
                .ends_with("swallowed line 5, which got no links either"),
            "{summary:?}"
        );
        let (_, summary) = run("id\r\na\r\n\r\n,x\r\n", LinkColumns::Token, BadRows::Omit);
        assert_eq!(summary.errors[0].line, 4, "{summary:?}");
    }

    #[test]
    fn a_quote_opened_on_a_later_line_of_a_row_or_on_the_last_line_is_named() {
        let later = "id,a,b\nx,\"multi\nline\",\"open\ny,z\n";
        let (_, summary) = run(later, LinkColumns::Token, BadRows::Omit);
        assert_eq!((summary.minted, summary.errors[0].line), (0, 2));
        assert!(
            summary.errors[0]
                .message
                .starts_with("a quoted field opened on line 3 is never closed")
                && summary.errors[0].message.contains("swallowed line 4,"),
            "{summary:?}"
        );
        let last = "id,a\nx,1\ny,\"never";
        let (_, summary) = run(last, LinkColumns::Token, BadRows::Omit);
        assert_eq!(summary.minted, 1);
        assert_eq!(
            summary.errors,
            [RowError {
                line: 3,
                message: "a quoted field opened on this line is never closed (missing \")".into()
            }]
        );
    }

    #[test]
    fn quotes_inside_fields_and_a_closed_quote_at_the_end_are_not_taken_for_an_open_one() {
        let input = "id,size,note\na,5\" screen,\"say \"\"hi\"\"\"\nb,7\",\"\"\"\"\nc,1,\"x\ny\"";
        let (out, summary) = run(input, LinkColumns::Token, BadRows::Omit);
        assert_eq!((summary.minted, summary.rejected), (3, 0), "{summary:?}");
        let rows = rows(&out);
        assert_eq!(rows[1][..3], ["a", "5\" screen", "say \"hi\""]);
        assert_eq!(rows[2][..3], ["b", "7\"", "\""]);
        assert_eq!(rows[3][..3], ["c", "1", "x\ny"]);
    }

    #[test]
    fn a_header_whose_quote_is_never_closed_refuses_the_file() {
        let input = "\"email,name\na@x.com,A\n";
        let ring = LinkKeyring::from_spec("k1:0123456789abcdef0123456789abcdef-csv").unwrap();
        let s = survey();
        let minter = token_minter(&ring, &s);
        let e = mint_csv(
            input.as_bytes(),
            Vec::new(),
            &minter,
            None,
            BadRows::Omit,
            None,
            |_| {},
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("opened on line 1 is never closed"),
            "{e}"
        );
        let e = recipient_ids(input.as_bytes(), None, &[], None).unwrap_err();
        assert!(matches!(e, RecipientsError::Header(_)), "{e}");
    }

    #[test]
    fn a_recipient_twice_gets_links_once_and_the_repeat_names_the_first_line() {
        let input =
            "email,name\nAna@Example.com,Ana\nbo@example.com,Bo\n\n ana@example.com ,Ana again\n";
        let (out, summary) = run(input, LinkColumns::Token, BadRows::Omit);
        assert_eq!(summary.minted, 2, "{summary:?}");
        assert_eq!(
            summary.errors,
            [RowError {
                line: 5,
                message: "ana@example.com already appears on line 2".into()
            }]
        );
        assert_eq!(rows(&out).len(), 3);
        // Ids that are not emails are compared as they are written.
        let (_, summary) = run("id\nA1\na1\nA1\n", LinkColumns::Token, BadRows::Explain);
        assert_eq!((summary.minted, summary.rejected), (2, 1), "{summary:?}");
        assert_eq!(summary.errors[0].line, 4);
    }

    #[test]
    fn a_header_naming_a_column_twice_is_refused_naming_it() {
        let cols = |h: &[&str]| h.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let e = Columns::find(cols(&["email", "name", "email"]), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the header line cannot be read: the column 'email' appears twice: give each \
             column its own name"
        );
        let e = Columns::find(cols(&["id", "Plan", "plan"]), None).unwrap_err();
        assert!(
            e.to_string().contains("'plan' appears twice (as 'Plan')"),
            "{e}"
        );
        // Unnamed columns (trailing commas of a spreadsheet export) are not names.
        assert!(Columns::find(cols(&["email", "", ""]), None).is_ok());
        let e = recipient_ids(b"email,email\na@x.com,b@x.com\n", None, &[], None).unwrap_err();
        assert!(e.to_string().contains("'email' appears twice"), "{e}");
    }

    #[test]
    fn columns_named_like_the_links_are_replaced_by_the_fresh_ones() {
        // A previous output run again: its old links are dropped, not repeated.
        let input = "email,Score_0,survey_url,plan\nana@example.com,old0,oldurl,pro\n";
        let (out, _) = run(input, urls(), BadRows::Omit);
        let again = rows(&out);
        let mut header = vec!["email".to_string(), "plan".into(), "survey_url".into()];
        header.extend((0..=10).map(|s| format!("score_{s}")));
        assert_eq!(again[0], header);
        assert_eq!(again[1][..2], ["ana@example.com", "pro"]);
        assert!(again[1][2].starts_with("https://s.example/r/"), "{again:?}");
        assert!(!again[1].iter().any(|f| f.starts_with("old")), "{again:?}");

        let input = "email,token,sondeo_error\nana@example.com,old,\n,x,y\n";
        let (out, _) = run(input, LinkColumns::Token, BadRows::Explain);
        let explained = rows(&out);
        assert_eq!(explained[0], ["email", "token", "sondeo_error"]);
        assert_ne!(explained[1][1], "old");
        assert_eq!(explained[2][..2], ["", ""]);
        assert!(
            explained[2][2].contains("no respondent id"),
            "{explained:?}"
        );

        // An earlier output in the other format loses its old links too: only fresh ones go out.
        let (out, _) = run(
            "email,SURVEY_URL,Score_3,score_10,Token,sondeo_error,extra\na@x.com,u,s3,s10,t,e,x\n",
            LinkColumns::Token,
            BadRows::Omit,
        );
        let token_run = rows(&out);
        assert_eq!(token_run[0], ["email", "extra", "token"]);
        assert_eq!(token_run[1][..2], ["a@x.com", "x"]);
        let (out, _) = run("email,token,score\na@x.com,t,9\n", urls(), BadRows::Omit);
        let urls_run = rows(&out);
        assert_eq!(urls_run[0][..3], ["email", "score", "survey_url"]);
        assert!(!urls_run[1].iter().any(|f| f == "t"), "{urls_run:?}");

        // The id column cannot be replaced: the file is refused up front.
        let added = vec!["token".to_string()];
        let e = recipient_ids(b"token,name\nt1,A\n", Some("token"), &added, None).unwrap_err();
        assert!(e.to_string().contains("id column 'token'"), "{e}");
    }
}
