//! CSV import: bytes as Excel or a text editor writes them → validated rows with line numbers.
//!
//! Decisions (the seed silently dropped bad rows; we never do):
//! - encoding: UTF-8 with or without BOM; otherwise Shift_JIS/CP932 (Excel's "CSV" on a
//!   Japanese Windows); anything that is neither, contains NUL or other control characters,
//!   or is UTF-16, is refused as not a CSV text file;
//! - header: the first row names the columns `name` and `email` (any order, any case; the
//!   Japanese headings 名前/氏名 and メールアドレス/メール also work); extra columns are ignored;
//!   a missing column refuses the file;
//! - formula-looking cells (starting with `=`, `+`, `-`, `@`, tab or CR — OWASP's CSV
//!   injection list) refuse the whole file, listing the lines: we would rather ask the user
//!   to fix the sheet than silently change their data;
//! - a row with a blank name or a malformed email is reported with its line number and
//!   skipped; a row whose email appeared earlier in the file or is already registered is
//!   reported as a duplicate and skipped; every other row is stored, all in one transaction.

use crate::domain::address::{Invalid, NewAddress};
use std::collections::HashSet;

/// Lines listed in an error before "and N more".
pub const MAX_LISTED: usize = 20;

/// The file as a whole is refused; nothing is imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// No file, or an empty one.
    #[error("no file or an empty file")]
    Empty,
    /// Over the upload limit.
    #[error("file larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Not UTF-8 or Shift_JIS text, or binary content.
    #[error("not a CSV text file")]
    NotText,
    /// The header lacks `name` or `email`.
    #[error("missing columns: {0:?}")]
    MissingColumns(Vec<&'static str>),
    /// Cells that a spreadsheet would run as formulas (line numbers).
    #[error("formula-looking cells on lines {0:?}")]
    Formula(Vec<u64>),
    /// The CSV structure itself is broken (e.g. an unterminated quote).
    #[error("malformed CSV near line {0}")]
    Malformed(u64),
}

/// A row that will be inserted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Line number in the file (1 is the header).
    pub line: u64,
    /// The validated address.
    pub address: NewAddress,
}

/// What reading the file found, before touching the database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Rows to insert.
    pub rows: Vec<Row>,
    /// `(line, email)` of rows whose email already appeared earlier in the file.
    pub duplicates: Vec<(u64, String)>,
    /// Lines refused, with why.
    pub invalid: Vec<(u64, Invalid)>,
    /// Blank lines skipped (not reported as errors).
    pub blank_lines: usize,
}

/// Which text encoding the file turned out to be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8 (with or without BOM).
    Utf8,
    /// Shift_JIS / CP932.
    ShiftJis,
}

/// Decodes the upload. See the module docs for the rules.
///
/// # Errors
/// [`ImportError::Empty`] or [`ImportError::NotText`].
pub fn decode(bytes: &[u8]) -> Result<(String, Encoding), ImportError> {
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ImportError::Empty);
    }
    if body.starts_with(b"\xFF\xFE") || body.starts_with(b"\xFE\xFF") {
        return Err(ImportError::NotText); // UTF-16: Excel's "Unicode text" is not a CSV
    }
    let (text, encoding) = match std::str::from_utf8(body) {
        Ok(s) => (s.to_owned(), Encoding::Utf8),
        Err(_) if bytes.len() != body.len() => return Err(ImportError::NotText), // BOM lied
        Err(_) => {
            let decoded = encoding_rs::SHIFT_JIS
                .decode_without_bom_handling_and_without_replacement(body)
                .ok_or(ImportError::NotText)?;
            (decoded.into_owned(), Encoding::ShiftJis)
        }
    };
    // Random bytes can happen to decode as Shift_JIS; real CSVs never hold control characters.
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\r' | '\n'))
    {
        return Err(ImportError::NotText);
    }
    Ok((text, encoding))
}

/// Parses decoded text into a [`Plan`].
///
/// # Errors
/// [`ImportError`] for problems that refuse the whole file.
pub fn plan(text: &str) -> Result<Plan, ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::None)
        .from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|_| ImportError::Malformed(1))?;
    let find = |names: &[&str]| {
        headers.iter().position(|h| {
            let h = h.trim().trim_start_matches('\u{feff}').to_lowercase();
            names.contains(&h.as_str())
        })
    };
    let name_col = find(&["name", "名前", "氏名"]);
    let email_col = find(&["email", "e-mail", "mail", "メールアドレス", "メール"]);
    let (Some(name_col), Some(email_col)) = (name_col, email_col) else {
        let mut missing = Vec::new();
        if name_col.is_none() {
            missing.push("name");
        }
        if email_col.is_none() {
            missing.push("email");
        }
        return Err(ImportError::MissingColumns(missing));
    };

    let mut plan = Plan::default();
    let mut formula_lines = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut lines = LineCounter::new(text);
    for record in reader.records() {
        let record = record.map_err(|e| {
            ImportError::Malformed(e.position().map_or(0, |p| lines.line_at(p.byte())))
        })?;
        let line = record.position().map_or(0, |p| lines.line_at(p.byte()));
        if record.iter().all(|cell| cell.trim().is_empty()) {
            plan.blank_lines += 1;
            continue;
        }
        if record.iter().any(looks_like_formula) {
            formula_lines.push(line);
            continue;
        }
        let name = record.get(name_col).unwrap_or("");
        let email = record.get(email_col).unwrap_or("");
        match NewAddress::parse(name, email) {
            Ok(address) => {
                if seen.insert(address.email().to_lowercase()) {
                    plan.rows.push(Row { line, address });
                } else {
                    plan.duplicates.push((line, address.email().to_owned()));
                }
            }
            Err(why) => plan.invalid.push((line, why)),
        }
    }
    if !formula_lines.is_empty() {
        return Err(ImportError::Formula(formula_lines));
    }
    Ok(plan)
}

/// Line numbers from byte offsets. The csv crate's own line counter is off by one after a
/// skipped empty line (it reports the empty line), so count newlines ourselves, forwards
/// only, which keeps 100,000 rows linear.
struct LineCounter<'a> {
    text: &'a [u8],
    offset: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(text: &'a str) -> Self {
        LineCounter {
            text: text.as_bytes(),
            offset: 0,
            line: 1,
        }
    }

    /// The line where the record starting at `byte` begins (skipping the line breaks the
    /// csv reader counts as part of the record's start).
    fn line_at(&mut self, byte: u64) -> u64 {
        let mut start = usize::try_from(byte)
            .unwrap_or(usize::MAX)
            .min(self.text.len());
        while start < self.text.len() && matches!(self.text[start], b'\r' | b'\n') {
            start += 1;
        }
        if start >= self.offset {
            self.line += self.text[self.offset..start]
                .iter()
                .filter(|b| **b == b'\n')
                .count() as u64;
            self.offset = start;
        }
        self.line
    }
}

/// OWASP's CSV-injection prefixes. A leading space does not protect (Excel trims it).
fn looks_like_formula(cell: &str) -> bool {
    cell.trim_start_matches(' ')
        .starts_with(['=', '+', '-', '@', '\t', '\r'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_with_and_without_bom() {
        let plain = "name,email\n山田,yamada@example.test\n";
        for bytes in [
            plain.as_bytes().to_vec(),
            [b"\xEF\xBB\xBF".as_slice(), plain.as_bytes()].concat(),
        ] {
            let (text, enc) = decode(&bytes).unwrap();
            assert_eq!(enc, Encoding::Utf8);
            let p = plan(&text).unwrap();
            assert_eq!(p.rows.len(), 1);
            assert_eq!(p.rows[0].address.name(), "山田");
            assert_eq!(p.rows[0].line, 2);
        }
    }

    #[test]
    fn shift_jis_as_excel_writes_it() {
        let csv = "名前,メールアドレス\r\n髙橋 ①,takahashi@example.test\r\n";
        let (bytes, _, unmappable) = encoding_rs::SHIFT_JIS.encode(csv);
        assert!(!unmappable);
        let (text, enc) = decode(&bytes).unwrap();
        assert_eq!(enc, Encoding::ShiftJis);
        let p = plan(&text).unwrap();
        assert_eq!(p.rows[0].address.name(), "髙橋 ①");
    }

    #[test]
    fn garbage_is_not_text() {
        let mut garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
        garbage[0] = 0x89;
        assert_eq!(decode(&garbage), Err(ImportError::NotText));
        assert_eq!(decode(b"name,email\n\0\0"), Err(ImportError::NotText));
        assert_eq!(decode(b"\xFF\xFEn\0a\0"), Err(ImportError::NotText));
        assert_eq!(decode(b"\xEF\xBB\xBF\xFF\xFE"), Err(ImportError::NotText));
        assert_eq!(decode(b""), Err(ImportError::Empty));
        assert_eq!(decode(b"\xEF\xBB\xBF \n"), Err(ImportError::Empty));
    }

    #[test]
    fn header_columns_are_found_or_reported() {
        let p = plan("Email , NAME,extra\na@x.test,A,1\n").unwrap();
        assert_eq!(p.rows[0].address.email(), "a@x.test");
        assert_eq!(
            plan("name,mail_address\nA,a@x.test\n"),
            Err(ImportError::MissingColumns(vec!["email"]))
        );
        assert_eq!(
            plan("foo\n1\n"),
            Err(ImportError::MissingColumns(vec!["name", "email"]))
        );
    }

    #[test]
    fn bad_duplicate_and_blank_rows_are_reported_by_line() {
        let text = "name,email\nA,a@x.test\n\n,b@x.test\nC,not-an-email\nA2,A@X.TEST\n\"Quoted, name\",q@x.test\nshort\n";
        let p = plan(text).unwrap();
        let lines: Vec<u64> = p.rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![2, 7]);
        assert_eq!(p.rows[1].address.name(), "Quoted, name");
        assert_eq!(p.duplicates, vec![(6, "A@X.TEST".to_string())]);
        assert_eq!(
            p.invalid,
            vec![
                (4, Invalid::NameBlank),
                (5, Invalid::EmailFormat),
                (8, Invalid::EmailBlank)
            ]
        );
        // A truly empty line is skipped by the reader; a line of empty cells is counted.
        assert_eq!(p.blank_lines, 0);
        assert_eq!(
            plan("name,email\n , \nA,a@x.test\n").unwrap().blank_lines,
            1
        );
    }

    #[test]
    fn formula_cells_refuse_the_file() {
        let text = "name,email\nok,ok@x.test\n=HYPERLINK(\"http://evil\"),a@x.test\nb,+b@x.test\n @SUM(1),c@x.test\n-1,d@x.test\n";
        assert_eq!(plan(text), Err(ImportError::Formula(vec![3, 4, 5, 6])));
    }
}
