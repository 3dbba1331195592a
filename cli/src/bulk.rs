//! `sondeo links`: a recipients CSV in, a mail-merge CSV out, minted through `POST /v1/links/bulk`
//! (in process locally, over HTTPS against a deployed stack) in calls of at most
//! [`MAX_BULK_ROWS`] rows and half of [`BULK_BODY_BYTES`].

use crate::client::{query_string, ApiClient, ClientError};
use bytes::Bytes;
use sondeo_domain::recipients::{
    header_names, Columns, Lines, RecipientsError, RowError, SeenRecipients, ERROR_COLUMN,
};
use sondeo_http::admin::{BULK_BODY_BYTES, MAX_BULK_ROWS};

/// Most bytes of rows in one call: half the API's limit, so quoting can never push a call over.
const CALL_BYTES: usize = BULK_BODY_BYTES / 2;
use std::io::Write;

/// What to mint.
#[derive(Debug, Clone)]
pub struct BulkRequest {
    /// Survey id.
    pub survey: String,
    /// Touchpoint slug.
    pub touchpoint: String,
    /// Days until the links expire.
    pub days: i64,
    /// `urls` or `token`.
    pub format: String,
    /// The column holding the respondent id (found by name when unset).
    pub id_column: Option<String>,
    /// The send the links belong to (none: the default send).
    pub send: Option<String>,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkSummary {
    /// Rows written with their links.
    pub minted: u64,
    /// Rows left out, with their line in the input (1 is the header).
    pub errors: Vec<RowError>,
    /// Input columns left out because the fresh link columns have their names.
    pub replaced: Vec<String>,
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    /// The input has no header line.
    #[error("the recipients file is empty: it needs a header line naming its columns")]
    Empty,
    /// Reading the input or writing the output failed.
    #[error("{0}")]
    Io(String),
    /// The file cannot be used at all (its header line is never ended).
    #[error(transparent)]
    Recipients(#[from] RecipientsError),
    /// The API refused the call (an unknown survey, a missing id column, …).
    #[error(transparent)]
    Api(#[from] ClientError),
    /// The API answered a CSV that does not match what was sent.
    #[error("the API's answer does not match the rows sent: {0}")]
    Answer(String),
}

/// Reads recipients from `input`, writes each good row with its links to `output` (bad rows are
/// left out and returned with their line numbers); `progress` gets the rows done so far. A row
/// whose quoted field is never closed and a recipient's second row are left out here, before
/// any call: the API sees one call at a time.
pub async fn mint_file<W: Write>(
    client: &ApiClient,
    request: &BulkRequest,
    input: &[u8],
    output: W,
    mut progress: impl FnMut(u64),
) -> Result<BulkSummary, BulkError> {
    let io = |e: csv::Error| BulkError::Io(e.to_string());
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input);
    let mut writer = csv::WriterBuilder::new().flexible(true).from_writer(output);
    let mut lines = Lines::new(input);
    let mut header = csv::ByteRecord::new();
    if !reader.read_byte_record(&mut header).map_err(io)? {
        return Err(BulkError::Empty);
    }
    if let Some(open) = lines.open_quote(reader.position().byte()) {
        return Err(RecipientsError::Header(format!(
            "a quoted field opened on line {} is never closed (missing \")",
            open.opened_on
        ))
        .into());
    }
    // The header as the API reads it; when it cannot be used, the API's answer says why.
    let names = header_names(&header).ok();
    let columns = names
        .clone()
        .and_then(|n| Columns::find(n, request.id_column.as_deref()).ok());
    let mut seen = SeenRecipients::default();
    let mut path = format!(
        "/v1/links/bulk?{}",
        query_string(&[
            ("survey", request.survey.clone()),
            ("touchpoint", request.touchpoint.clone()),
            ("expires_in_days", request.days.to_string()),
            ("format", request.format.clone()),
        ])
    );
    for (name, value) in [("id_column", &request.id_column), ("send", &request.send)] {
        if let Some(v) = value {
            path = format!("{path}&{}", query_string(&[(name, v.clone())]));
        }
    }
    let mut summary = BulkSummary::default();
    let mut chunk: Vec<(u64, csv::ByteRecord)> = Vec::with_capacity(MAX_BULK_ROWS as usize);
    let mut chunk_bytes = 0usize;
    let mut wrote_header = false;
    let mut done = 0u64;
    loop {
        let mut record = csv::ByteRecord::new();
        let line = lines.record_line(reader.position().byte());
        let more = match reader.read_byte_record(&mut record) {
            Ok(more) => more,
            Err(e) => {
                // Unreadable at the CSV level: reported here, never sent.
                summary.errors.push(RowError {
                    line,
                    message: format!("unreadable row: {e}"),
                });
                done += 1;
                continue;
            }
        };
        if more {
            // A quote never closed took the rest of the input into this row's last field.
            if let Some(open) = lines.open_quote(reader.position().byte()) {
                summary.errors.push(RowError {
                    line,
                    message: open.reason(line),
                });
                done += 1;
                continue;
            }
            let id = columns.as_ref().and_then(|c| c.respondent(&record));
            if let Err(message) = id.map_or(Ok(()), |id| seen.claim(id, line)) {
                summary.errors.push(RowError { line, message });
                done += 1;
                continue;
            }
        }
        let size = record.as_slice().len() + record.len();
        if more && size > CALL_BYTES {
            summary.errors.push(RowError {
                line,
                message: format!("the row is larger than {CALL_BYTES} bytes"),
            });
            done += 1;
            continue;
        }
        let full = chunk.len() as u64 == MAX_BULK_ROWS || chunk_bytes + size > CALL_BYTES;
        if more && !full {
            chunk_bytes += size;
            chunk.push((line, record));
            continue;
        }
        if !chunk.is_empty() || !wrote_header {
            let answer = client.post_csv(&path, body(&header, &chunk)?).await?;
            let kept = write_answer(&answer, &chunk, !wrote_header, &mut writer, &mut summary)?;
            if !wrote_header {
                summary.replaced = replaced(names.as_deref(), &kept, &request.format);
            }
            wrote_header = true;
            done += chunk.len() as u64;
            chunk.clear();
            progress(done);
        }
        if !more {
            break;
        }
        chunk_bytes = size;
        chunk.push((line, record));
    }
    writer.flush().map_err(|e| BulkError::Io(e.to_string()))?;
    summary.errors.sort_by_key(|e| e.line);
    Ok(summary)
}

/// The CSV body of one call: the header and the chunk's rows.
fn body(header: &csv::ByteRecord, rows: &[(u64, csv::ByteRecord)]) -> Result<Bytes, BulkError> {
    let mut w = csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(Vec::new());
    let io = |e: csv::Error| BulkError::Io(e.to_string());
    w.write_byte_record(header).map_err(io)?;
    for (_, r) in rows {
        w.write_byte_record(r).map_err(io)?;
    }
    w.into_inner()
        .map(Bytes::from)
        .map_err(|e| BulkError::Io(e.to_string()))
}

/// The input columns the answer left out (`sent`: the input's column names; `answer`: the
/// answer's, without the error column): those before the first link column that the input
/// had and the answer has not. The links start at the last `token` or `survey_url` column, as
/// no kept column can have a link column's name.
fn replaced(sent: Option<&[String]>, answer: &[String], format: &str) -> Vec<String> {
    let first_link = if format == "token" {
        "token"
    } else {
        "survey_url"
    };
    let (Some(sent), Some(start)) = (sent, answer.iter().rposition(|n| n == first_link)) else {
        return Vec::new();
    };
    let kept = &answer[..start];
    sent.iter()
        .filter(|n| !n.is_empty() && !kept.contains(n))
        .cloned()
        .collect()
}

/// Writes the good rows of one answer (without the error column), records the bad ones under
/// their line in the input, and returns the answer's column names (without the error column).
fn write_answer<W: Write>(
    answer: &[u8],
    sent: &[(u64, csv::ByteRecord)],
    with_header: bool,
    writer: &mut csv::Writer<W>,
    summary: &mut BulkSummary,
) -> Result<Vec<String>, BulkError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(answer);
    let mut records = reader.byte_records();
    let header = records
        .next()
        .ok_or_else(|| BulkError::Answer("no header".into()))?
        .map_err(|e| BulkError::Answer(e.to_string()))?;
    let last = header.len().saturating_sub(1);
    if header.get(last) != Some(ERROR_COLUMN.as_bytes()) {
        return Err(BulkError::Answer(format!("no {ERROR_COLUMN} column")));
    }
    let io = |e: csv::Error| BulkError::Io(e.to_string());
    if with_header {
        writer.write_record(header.iter().take(last)).map_err(io)?;
    }
    let mut count = 0;
    for (record, (line, _)) in records.zip(sent) {
        let record = record.map_err(|e| BulkError::Answer(e.to_string()))?;
        count += 1;
        match record.get(last) {
            Some(b"") => {
                writer.write_record(record.iter().take(last)).map_err(io)?;
                summary.minted += 1;
            }
            why => summary.errors.push(RowError {
                line: *line,
                message: String::from_utf8_lossy(why.unwrap_or(b"no reason given")).into_owned(),
            }),
        }
    }
    if count != sent.len() {
        return Err(BulkError::Answer(format!(
            "{count} rows came back for {} sent",
            sent.len()
        )));
    }
    Ok(header
        .iter()
        .take(last)
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect())
}
