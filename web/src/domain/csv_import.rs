//! CSV import: bytes as Excel or a text editor writes them → validated rows with line numbers.
//!
//! Decisions (the seed silently dropped bad rows; we never do):
//! - encoding: UTF-8 with or without BOM; otherwise Shift_JIS/CP932 (Excel's "CSV" on a
//!   Japanese Windows); anything that is neither, contains NUL or other control characters,
//!   or is UTF-16, is refused as not a CSV text file. A UTF-8 file with a few broken bytes is
//!   told apart from Shift_JIS by its lines: in a UTF-8 file most lines with non-ASCII text
//!   are valid UTF-8, in a Shift_JIS file almost none are. Such a file is refused listing
//!   the broken lines, never decoded as Shift_JIS mojibake;
//! - structure: a quote that is never closed would make the CSV reader take the rest of the
//!   file as one cell; the file is refused naming the line where the quote opened;
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
    /// The CSV structure itself is broken.
    #[error("malformed CSV near line {0}")]
    Malformed(u64),
    /// A quoted cell opened on this line is never closed.
    #[error("the quote opened on line {0} is never closed")]
    UnterminatedQuote(u64),
    /// UTF-8 text with bytes that are not UTF-8, on these lines.
    #[error("bytes that are not UTF-8 on lines {0:?}")]
    BrokenUtf8(Vec<u64>),
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
/// [`ImportError::Empty`], [`ImportError::NotText`] or [`ImportError::BrokenUtf8`].
pub fn decode(bytes: &[u8]) -> Result<(String, Encoding), ImportError> {
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let has_bom = body.len() != bytes.len();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ImportError::Empty);
    }
    if body.starts_with(b"\xFF\xFE") || body.starts_with(b"\xFE\xFF") {
        return Err(ImportError::NotText); // UTF-16: Excel's "Unicode text" is not a CSV
    }
    let (text, encoding) = match std::str::from_utf8(body) {
        Ok(s) => (s.to_owned(), Encoding::Utf8),
        Err(_) => {
            let lines = Utf8Lines::of(body);
            if has_bom || lines.mostly_valid() {
                return Err(ImportError::BrokenUtf8(lines.broken));
            }
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

/// How the lines holding non-ASCII bytes read as UTF-8.
struct Utf8Lines {
    /// Lines with non-ASCII bytes that are valid UTF-8.
    valid: usize,
    /// Line numbers (from 1) with bytes that are not.
    broken: Vec<u64>,
}

impl Utf8Lines {
    fn of(body: &[u8]) -> Self {
        let mut lines = Utf8Lines {
            valid: 0,
            broken: Vec::new(),
        };
        for (i, line) in body.split(|b| *b == b'\n').enumerate() {
            if line.is_ascii() {
                continue;
            }
            if std::str::from_utf8(line).is_ok() {
                lines.valid += 1;
            } else {
                lines.broken.push(i as u64 + 1);
            }
        }
        lines
    }

    /// A UTF-8 file with a few broken bytes, rather than another encoding: at least as many
    /// non-ASCII lines read as UTF-8 as do not. (A line of Shift_JIS Japanese is valid UTF-8
    /// only by rare accident.)
    fn mostly_valid(&self) -> bool {
        self.valid > 0 && self.valid >= self.broken.len()
    }
}

/// The line where a quoted cell opens that is never closed, as the CSV reader would see it
/// (RFC 4180: a quote opens a cell only at its start; `""` inside is a quote).
fn unterminated_quote(text: &str) -> Option<u64> {
    #[derive(Clone, Copy)]
    enum State {
        CellStart,
        Unquoted,
        Quoted(u64),
        QuoteInQuoted(u64),
    }
    let mut state = State::CellStart;
    let mut line = 1u64;
    for b in text.bytes() {
        state = match (state, b) {
            (State::Quoted(open), b'"') => State::QuoteInQuoted(open),
            (State::Quoted(open), _) => State::Quoted(open),
            (State::QuoteInQuoted(open), b'"') => State::Quoted(open),
            (_, b',' | b'\n' | b'\r') => State::CellStart,
            (State::CellStart, b'"') => State::Quoted(line),
            _ => State::Unquoted,
        };
        if b == b'\n' {
            line += 1;
        }
    }
    match state {
        State::Quoted(open) => Some(open),
        _ => None,
    }
}

/// Parses decoded text into a [`Plan`].
///
/// # Errors
/// [`ImportError`] for problems that refuse the whole file.
pub fn plan(text: &str) -> Result<Plan, ImportError> {
    if let Some(line) = unterminated_quote(text) {
        return Err(ImportError::UnterminatedQuote(line));
    }
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

    /// Japanese names as people type them, kanji, kana and half-width kana mixed.
    fn japanese_rows(n: usize) -> String {
        let family = [
            "山田",
            "佐藤",
            "髙橋",
            "渡辺",
            "伊藤",
            "ｽｽﾞｷ",
            "中村",
            "小林",
            "加藤",
            "吉田",
        ];
        let given = [
            "太郎",
            "花子",
            "ｱｷﾗ",
            "翔太",
            "さくら",
            "①号",
            "陽菜",
            "蓮",
            "ユウト",
            "凛",
        ];
        let mut csv = String::from("名前,メールアドレス\r\n");
        for i in 0..n {
            csv.push_str(&format!(
                "{} {},user{i}@example.test\r\n",
                family[i % family.len()],
                given[(i / family.len()) % given.len()]
            ));
        }
        csv
    }

    #[test]
    fn shift_jis_is_not_mistaken_for_broken_utf8() {
        for n in [1, 2, 5, 100, 1000] {
            let rows = japanese_rows(n);
            let (bytes, _, unmappable) = encoding_rs::SHIFT_JIS.encode(&rows);
            assert!(!unmappable);
            let (text, enc) = decode(&bytes).unwrap();
            assert_eq!(enc, Encoding::ShiftJis, "{n} rows");
            assert_eq!(plan(&text).unwrap().rows.len(), n);
        }
    }

    /// Names whose UTF-8 bytes also happen to be valid Shift_JIS: the file decodes either
    /// way, which is how a broken UTF-8 file used to come in as mojibake.
    fn ambiguous_rows(n: usize) -> String {
        let family = [
            "山田", "藤田", "中山", "石田", "松本", "岡田", "森田", "太田", "本田", "田中",
        ];
        let given = ["太", "蓮", "陽", "花", "水", "口", "森", "島", "木", "浦"];
        let mut csv = String::from("名前,メールアドレス\r\n");
        for i in 0..n {
            csv.push_str(&format!(
                "{} {},user{i}@example.test\r\n",
                family[i % family.len()],
                given[(i / family.len()) % given.len()]
            ));
        }
        csv
    }

    #[test]
    fn utf8_with_a_broken_byte_is_refused_by_line() {
        let mut bytes = ambiguous_rows(50).into_bytes();
        // Line 7's first byte of its first character, cut off (a lost byte in transfer).
        let line7 = bytes
            .split(|b| *b == b'\n')
            .take(6)
            .map(|l| l.len() + 1)
            .sum::<usize>();
        bytes.remove(line7);
        assert!(std::str::from_utf8(&bytes).is_err());
        assert!(
            encoding_rs::SHIFT_JIS
                .decode_without_bom_handling_and_without_replacement(&bytes)
                .is_some(),
            "it would decode as Shift_JIS mojibake"
        );
        assert_eq!(decode(&bytes), Err(ImportError::BrokenUtf8(vec![7])));
        // Two broken lines among many good ones, with a BOM.
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice("name,email\n山田,a@x.test\n".as_bytes());
        bom.extend_from_slice(b"\xE5\xB1,b@x.test\n\xFF,c@x.test\n");
        assert_eq!(decode(&bom), Err(ImportError::BrokenUtf8(vec![3, 4])));
    }

    #[test]
    fn an_unterminated_quote_is_refused_by_line() {
        let mut csv = String::from("name,email\nA,a@x.test\n\"B, b@x.test\n");
        for i in 0..50 {
            csv.push_str(&format!("C{i},c{i}@x.test\n"));
        }
        assert_eq!(plan(&csv), Err(ImportError::UnterminatedQuote(3)));
        // Quotes that close, across lines, doubled, or in the middle of a cell, are fine.
        let ok = "name,email\n\"Yamada, \"\"T\"\"\",y@x.test\n\"multi\nline\",m@x.test\nO\"Neil,o@x.test\n";
        let p = plan(ok).unwrap();
        assert_eq!(p.rows.len(), 2, "{p:?}");
        assert_eq!(p.rows[0].address.name(), "Yamada, \"T\"");
        assert_eq!(p.rows[1].line, 5);
        assert_eq!(
            p.invalid,
            vec![(3, Invalid::NameFormat)],
            "a name with a line break"
        );
    }
}
