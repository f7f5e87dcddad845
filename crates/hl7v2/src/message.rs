//! An HL7 v2 message as segments of delimited fields (HL7 v2.x chapter 2 encoding rules): the
//! delimiters come from MSH-1 and MSH-2, segments end with carriage return (line feeds are
//! accepted too, as real feeds mix them), and escape sequences are decoded on access.

use std::fmt;

/// The separators a message declares in MSH-1 and MSH-2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delimiters {
    /// MSH-1, usually `|`.
    pub field: char,
    /// Usually `^`.
    pub component: char,
    /// Usually `~`.
    pub repetition: char,
    /// Usually `\`.
    pub escape: char,
    /// Usually `&`.
    pub subcomponent: char,
}

impl Default for Delimiters {
    fn default() -> Self {
        Self {
            field: '|',
            component: '^',
            repetition: '~',
            escape: '\\',
            subcomponent: '&',
        }
    }
}

impl Delimiters {
    /// MSH-2 as these delimiters write it.
    pub fn encoding_characters(&self) -> String {
        [
            self.component,
            self.repetition,
            self.escape,
            self.subcomponent,
        ]
        .iter()
        .collect()
    }

    /// `text` with every delimiter escaped, ready to be placed in a field.
    pub fn escape(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            let code = match c {
                c if c == self.field => Some('F'),
                c if c == self.component => Some('S'),
                c if c == self.subcomponent => Some('T'),
                c if c == self.repetition => Some('R'),
                c if c == self.escape => Some('E'),
                // A segment terminator inside a value would end the segment.
                '\r' | '\n' => {
                    out.push(self.escape);
                    out.push_str(".br");
                    out.push(self.escape);
                    continue;
                }
                _ => None,
            };
            match code {
                Some(code) => {
                    out.push(self.escape);
                    out.push(code);
                    out.push(self.escape);
                }
                None => out.push(c),
            }
        }
        out
    }

    /// Decodes the escape sequences of `raw` (§2.7): delimiters, `.br` line breaks and `Xhh…`
    /// hexadecimal bytes; formatting (`H`, `N`, `.sp`, …) and character-set switches are dropped.
    /// An unterminated sequence is kept as written.
    pub fn unescape(&self, raw: &str) -> String {
        if !raw.contains(self.escape) {
            return raw.to_owned();
        }
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(start) = rest.find(self.escape) {
            out.push_str(&rest[..start]);
            let after = &rest[start + self.escape.len_utf8()..];
            let Some(end) = after.find(self.escape) else {
                out.push_str(&rest[start..]);
                return out;
            };
            let seq = &after[..end];
            match seq {
                "F" => out.push(self.field),
                "S" => out.push(self.component),
                "T" => out.push(self.subcomponent),
                "R" => out.push(self.repetition),
                "E" => out.push(self.escape),
                ".br" => out.push('\n'),
                s if s.starts_with('X') && s.len() > 1 => {
                    let hex = &s[1..];
                    let bytes: Option<Vec<u8>> = (0..hex.len())
                        .step_by(2)
                        .map(|i| {
                            hex.get(i..i + 2)
                                .and_then(|h| u8::from_str_radix(h, 16).ok())
                        })
                        .collect();
                    match bytes {
                        Some(b) => out.push_str(&decode_text(&b)),
                        None => {
                            out.push(self.escape);
                            out.push_str(seq);
                            out.push(self.escape);
                        }
                    }
                }
                _ => {}
            }
            rest = &after[end + self.escape.len_utf8()..];
        }
        out.push_str(rest);
        out
    }
}

/// Why a message could not be parsed. The texts name positions, never contents (PHI).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing but whitespace.
    #[error("the message is empty")]
    Empty,
    /// The first segment is not MSH.
    #[error("the message does not start with an MSH segment")]
    NoHeader,
    /// MSH-2 does not hold four distinct encoding characters.
    #[error(
        "MSH-2 must hold the four encoding characters (component, repetition, escape, subcomponent), e.g. ^~\\&"
    )]
    BadEncodingCharacters,
    /// A segment id is not three upper-case letters or digits.
    #[error("segment {0} does not start with a valid segment id")]
    BadSegmentId(usize),
    /// A required header field is empty.
    #[error("{0} is required")]
    MissingHeaderField(&'static str),
}

/// One segment: its id and its fields, numbered as HL7 numbers them (`field(1)` is the first
/// field after the id; for MSH, `field(1)` is the field separator itself).
#[derive(Clone, PartialEq, Eq)]
pub struct Segment {
    fields: Vec<String>,
}

impl fmt::Debug for Segment {
    // Field contents are PHI: a debug print shows the shape only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Segment({}, {} fields)",
            self.id(),
            self.fields.len() - 1
        )
    }
}

impl Segment {
    /// The segment id (`PID`, `OBX`, `ZXX` …).
    pub fn id(&self) -> &str {
        &self.fields[0]
    }

    /// Field `n` as sent (escapes not decoded), `""` when absent.
    pub fn raw(&self, n: usize) -> &str {
        self.fields.get(n).map_or("", String::as_str)
    }

    /// How many fields the segment carries.
    pub fn len(&self) -> usize {
        self.fields.len() - 1
    }

    /// Whether the segment carries no field.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A parsed message.
#[derive(Debug, Clone)]
pub struct Message {
    delimiters: Delimiters,
    segments: Vec<Segment>,
}

/// One repetition of a field, one component or one subcomponent, with the message's delimiters;
/// `component` and `sub` narrow it, `text` decodes it.
#[derive(Clone, Copy)]
pub struct Field<'a> {
    raw: &'a str,
    d: &'a Delimiters,
}

impl fmt::Debug for Field<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Field({} bytes)", self.raw.len())
    }
}

impl<'a> Field<'a> {
    /// Component `n` (1-based); the whole value when it has no components and `n` is 1.
    pub fn component(&self, n: usize) -> Field<'a> {
        self.part(self.d.component, n)
    }

    /// Subcomponent `n` (1-based) of this component.
    pub fn sub(&self, n: usize) -> Field<'a> {
        self.part(self.d.subcomponent, n)
    }

    fn part(&self, sep: char, n: usize) -> Field<'a> {
        let raw = n
            .checked_sub(1)
            .and_then(|i| self.raw.split(sep).nth(i))
            .unwrap_or("");
        Field { raw, d: self.d }
    }

    /// The text with escapes decoded; `""` for an empty value and for HL7's explicit null `""`.
    pub fn text(&self) -> String {
        if self.raw == "\"\"" {
            return String::new();
        }
        self.d.unescape(self.raw)
    }

    /// The value as sent.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// Whether nothing (or HL7's explicit null) was sent.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty() || self.raw == "\"\""
    }
}

/// Decodes bytes as UTF-8, or as ISO 8859-1 when they are not UTF-8 (the common legacy default
/// when MSH-18 names no character set); never fails.
pub fn decode_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

impl Message {
    /// Parses a message from bytes (UTF-8, else ISO 8859-1).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ParseError> {
        Self::parse(&decode_text(bytes))
    }

    /// Parses a message.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let text = text.trim_start_matches('\u{feff}');
        // Values are kept as sent, trailing spaces included; blank lines between segments
        // (CR LF pairs, a trailing newline) are not segments.
        let mut lines = text.split(['\r', '\n']).filter(|l| !l.trim().is_empty());
        let header = lines.next().ok_or(ParseError::Empty)?.trim_start();
        if !header.starts_with("MSH") {
            return Err(ParseError::NoHeader);
        }
        let mut chars = header[3..].chars();
        let field = chars.next().ok_or(ParseError::BadEncodingCharacters)?;
        let after_sep = &header[3 + field.len_utf8()..];
        let encoding: Vec<char> = after_sep
            .split(field)
            .next()
            .unwrap_or("")
            .chars()
            .collect();
        // Four characters, or five with v2.7's truncation character (kept as data here).
        if !(4..=5).contains(&encoding.len()) {
            return Err(ParseError::BadEncodingCharacters);
        }
        let mut seen = vec![field];
        for &c in &encoding {
            if seen.contains(&c) || c.is_alphanumeric() || c.is_whitespace() {
                return Err(ParseError::BadEncodingCharacters);
            }
            seen.push(c);
        }
        let delimiters = Delimiters {
            field,
            component: encoding[0],
            repetition: encoding[1],
            escape: encoding[2],
            subcomponent: encoding[3],
        };
        let mut msh = vec!["MSH".to_owned(), field.to_string()];
        msh.extend(after_sep.split(field).map(str::to_owned));
        let mut segments = vec![Segment { fields: msh }];
        for (i, line) in lines.enumerate() {
            let fields: Vec<String> = line.split(field).map(str::to_owned).collect();
            let id = &fields[0];
            let valid = id.len() == 3
                && id.starts_with(|c: char| c.is_ascii_uppercase())
                && id
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
            if !valid {
                return Err(ParseError::BadSegmentId(i + 2));
            }
            segments.push(Segment { fields });
        }
        let message = Self {
            delimiters,
            segments,
        };
        if message.value("MSH", 9).component(1).is_empty() {
            return Err(ParseError::MissingHeaderField("MSH-9 (message type)"));
        }
        if message.value("MSH", 10).is_empty() {
            return Err(ParseError::MissingHeaderField(
                "MSH-10 (message control id)",
            ));
        }
        Ok(message)
    }

    /// The message's delimiters.
    pub fn delimiters(&self) -> &Delimiters {
        &self.delimiters
    }

    /// Every segment, MSH first.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The MSH segment.
    pub fn header(&self) -> &Segment {
        &self.segments[0]
    }

    /// The first segment with id `id`.
    pub fn first(&self, id: &str) -> Option<&Segment> {
        self.segments.iter().find(|s| s.id() == id)
    }

    /// The first repetition of field `n` of `segment`.
    pub fn field<'a>(&'a self, segment: &'a Segment, n: usize) -> Field<'a> {
        self.repetitions(segment, n).next().unwrap_or(Field {
            raw: "",
            d: &self.delimiters,
        })
    }

    /// Every repetition of field `n` of `segment` (none when the field is empty).
    pub fn repetitions<'a>(
        &'a self,
        segment: &'a Segment,
        n: usize,
    ) -> impl Iterator<Item = Field<'a>> + 'a {
        let raw = segment.raw(n);
        // MSH-1 and MSH-2 are the delimiters themselves, not delimited data.
        let whole = segment.id() == "MSH" && n <= 2;
        let d = &self.delimiters;
        let parts: Vec<&'a str> = if raw.is_empty() {
            Vec::new()
        } else if whole {
            vec![raw]
        } else {
            raw.split(d.repetition).collect()
        };
        parts.into_iter().map(move |raw| Field { raw, d })
    }

    /// The first repetition of field `n` of the first `segment` segment (empty when absent).
    pub fn value(&self, segment: &str, n: usize) -> Field<'_> {
        match self.first(segment) {
            Some(s) => self.field(s, n),
            None => Field {
                raw: "",
                d: &self.delimiters,
            },
        }
    }

    /// MSH-10, the sender's id for this message (acknowledgements quote it).
    pub fn control_id(&self) -> String {
        self.value("MSH", 10).text()
    }

    /// MSH-9's message code and trigger event, e.g. (`ADT`, `A01`).
    pub fn message_type(&self) -> (String, String) {
        let t = self.value("MSH", 9);
        (t.component(1).text(), t.component(2).text())
    }

    /// The sender as MSH-3 (application) and MSH-4 (facility) identify it, as sent.
    pub fn sender(&self) -> String {
        format!(
            "{}{}{}",
            self.header().raw(3),
            self.delimiters.field,
            self.header().raw(4)
        )
    }
}
