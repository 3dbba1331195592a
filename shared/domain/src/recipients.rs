//! Mail-merge recipient lists: a recipients CSV in, the same rows with each recipient's signed
//! links out, ready for an email tool's import.

use crate::response::{check_respondent, suppression_id};
use crate::survey::Survey;
use crate::token::{LinkClaims, LinkKeyring, LinkScope};
use std::collections::HashSet;
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

impl Minter<'_> {
    /// The names of the columns the links take.
    pub fn link_header(&self) -> Vec<String> {
        match &self.links {
            LinkColumns::Token => vec!["token".into()],
            LinkColumns::Urls { .. } => {
                let mut names = vec!["survey_url".to_string()];
                if self.survey.kind.is_discrete() {
                    let (min, max) = self.survey.kind.range();
                    names.extend((min..=max).map(|s| format!("score_{s}")));
                }
                names
            }
        }
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
}

/// Line numbers of the records of an in-memory CSV, counting the empty lines the reader skips.
#[derive(Debug, Clone)]
pub struct Lines<'a> {
    input: &'a [u8],
    offset: usize,
    line: u64,
}

impl<'a> Lines<'a> {
    /// Starts at the first line of `input`.
    pub fn new(input: &'a [u8]) -> Lines<'a> {
        Lines {
            input,
            offset: 0,
            line: 1,
        }
    }

    /// The line of the first character at or after byte `from` that is not a line end: where a
    /// record the reader started reading at `from` begins.
    pub fn record_line(&mut self, from: u64) -> u64 {
        let from = usize::try_from(from)
            .unwrap_or(usize::MAX)
            .min(self.input.len());
        if from > self.offset {
            self.line += count_newlines(&self.input[self.offset..from]);
            self.offset = from;
        }
        while let Some(&b) = self.input.get(self.offset) {
            match b {
                b'\n' => self.line += 1,
                b'\r' => {}
                _ => break,
            }
            self.offset += 1;
        }
        self.line
    }
}

fn count_newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|b| **b == b'\n').count() as u64
}

/// Reads a recipients CSV (UTF-8, optional BOM, quoted fields, empty lines skipped) and writes
/// each row with its links, refusing more than `max_rows` rows; `progress` is called with the
/// number of rows read so far.
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
    let columns = read_header(&mut reader, id_column)?;
    let link_header = minter.link_header();
    let mut out_header: Vec<&str> = columns.names.iter().map(String::as_str).collect();
    out_header.extend(link_header.iter().map(String::as_str));
    if bad_rows == BadRows::Explain {
        out_header.push(ERROR_COLUMN);
    }
    writer.write_record(&out_header).map_err(io)?;
    let mut summary = MintSummary::default();
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
                check_row(&record, &columns).and_then(|fields| {
                    match minter.links_for(fields[columns.id].trim()) {
                        Ok(links) => Ok((fields, links)),
                        Err(why) => Err((fields, why)),
                    }
                })
            }
            // A row the CSV reader cannot take (it reads on from the next line).
            Err(e) => {
                rows += 1;
                Err((Vec::new(), format!("unreadable row: {e}")))
            }
        };
        let out: Vec<&str> = match &outcome {
            Ok((fields, links)) => {
                summary.minted += 1;
                let mut out = fields.clone();
                out.extend(links.iter().map(String::as_str));
                if bad_rows == BadRows::Explain {
                    out.push("");
                }
                out
            }
            Err(_) if bad_rows == BadRows::Omit => Vec::new(),
            Err((fields, why)) => {
                // The row as the header's columns (a row with too many or too few fields is
                // cut or padded: its reason says so), empty links, then the reason.
                let mut out: Vec<&str> = fields.iter().take(width).copied().collect();
                out.resize(width, "");
                out.extend(link_header.iter().map(|_| ""));
                out.push(why);
                out
            }
        };
        if !out.is_empty() {
            writer.write_record(&out).map_err(io)?;
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

/// The CSV reader every pass over a recipients file uses.
fn reader(input: &[u8]) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input)
}

/// Reads the header (the first line that is not blank) and finds the id column.
fn read_header(
    reader: &mut csv::Reader<&[u8]>,
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
    let names = header
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
        .collect::<Result<Vec<_>, _>>()?;
    Columns::find(names, id_column)
}

/// Checks a recipients file before any link is minted (its header, its id column, at most
/// `max_rows` rows) and returns the respondent ids of its rows, to look up in the suppression
/// list.
pub fn recipient_ids(
    input: &[u8],
    id_column: Option<&str>,
    max_rows: Option<u64>,
) -> Result<Vec<String>, RecipientsError> {
    let mut reader = reader(input);
    let columns = read_header(&mut reader, id_column)?;
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
}
