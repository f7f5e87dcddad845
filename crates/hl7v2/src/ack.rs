//! Acknowledgements (HL7 v2 §2.9): an ACK whose MSA quotes the sender's MSH-10, with an ERR
//! segment naming the HL7 error code (table 0357) and the position of a refused message.
//!
//! Original mode answers AA/AE/AR; when the sender asks for enhanced mode (MSH-15 is valued)
//! the same outcomes are CA/CE/CR, sent once the message is stored (a commit acknowledgement).

use crate::message::{Delimiters, Message};

/// The outcome an acknowledgement reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckCode {
    /// Stored (AA / CA).
    Accept,
    /// Understood but refused for its content (AE / CE): the sender should fix and resend.
    Error,
    /// Refused as unparseable or unsupported (AR / CR).
    Reject,
}

impl AckCode {
    fn code(self, enhanced: bool) -> &'static str {
        match (self, enhanced) {
            (Self::Accept, false) => "AA",
            (Self::Error, false) => "AE",
            (Self::Reject, false) => "AR",
            (Self::Accept, true) => "CA",
            (Self::Error, true) => "CE",
            (Self::Reject, true) => "CR",
        }
    }
}

/// Why a message was refused, as an ERR segment states it. The text must not hold PHI: it goes
/// back to the sender and into the dead-letter store's index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorCondition {
    /// The outcome to report.
    pub ack: AckCode,
    /// HL7 table 0357: 100 segment sequence, 101 required field missing, 102 data type,
    /// 103 table value not found, 200 unsupported message type, 201 unsupported event code,
    /// 202 unsupported processing id, 203 unsupported version id, 206 application record locked,
    /// 207 application internal error.
    pub code: u16,
    /// Human-readable reason (ERR-8 and MSA-3).
    pub text: String,
    /// The segment id and field number at fault, when there is one.
    pub location: Option<(String, usize)>,
    /// Which segment of that id (1 for the first), for ERR-2.
    pub sequence: usize,
}

impl ErrorCondition {
    /// A condition with no location.
    pub fn new(ack: AckCode, code: u16, text: impl Into<String>) -> Self {
        Self {
            ack,
            code,
            text: text.into(),
            location: None,
            sequence: 1,
        }
    }

    /// The same condition at `segment`-`field`.
    pub fn at(mut self, segment: &str, field: usize) -> Self {
        self.location = Some((segment.to_owned(), field));
        self
    }

    /// The same condition in the `n`th segment of its id (1 for the first).
    pub fn in_repetition(mut self, n: usize) -> Self {
        self.sequence = n;
        self
    }

    fn code_name(&self) -> &'static str {
        match self.code {
            0 => "Message accepted",
            100 => "Segment sequence error",
            101 => "Required field missing",
            102 => "Data type error",
            103 => "Table value not found",
            200 => "Unsupported message type",
            201 => "Unsupported event code",
            202 => "Unsupported processing id",
            203 => "Unsupported version id",
            206 => "Application record locked",
            _ => "Application internal error",
        }
    }
}

/// Whether the sender of `original` wants an acknowledgement of this outcome. Original mode
/// (MSH-15 empty) always does; in enhanced mode MSH-15 says: AL always, NE never, ER only for a
/// refusal, SU only for an acceptance (anything else: always, to be safe).
pub fn ack_wanted(original: &Message, accepted: bool) -> bool {
    match original.value("MSH", 15).component(1).raw() {
        "NE" => false,
        "ER" => !accepted,
        "SU" => accepted,
        _ => true,
    }
}

/// The acknowledgement of `original`: positive when `error` is `None`. `control_id` (MSH-10 of
/// the ACK) and `timestamp` (MSH-7, HL7 DTM) come from the caller so the answer is reproducible.
/// The ACK uses the original's delimiters, so its copied header fields stay valid as sent.
pub fn acknowledge(
    original: &Message,
    error: Option<&ErrorCondition>,
    control_id: &str,
    timestamp: &str,
) -> String {
    let h = original.header();
    let d = original.delimiters();
    let enhanced = !original.value("MSH", 15).is_empty();
    let trigger = original.value("MSH", 9).component(2).raw();
    let f = d.field;
    let c = d.component;
    let header = format!(
        "MSH{f}{enc}{f}{app}{f}{fac}{f}{to_app}{f}{to_fac}{f}{ts}{f}{f}ACK{c}{trigger}{c}ACK{f}{cid}{f}{pid}{f}{version}",
        enc = d.encoding_characters(),
        app = h.raw(5),
        fac = h.raw(6),
        to_app = h.raw(3),
        to_fac = h.raw(4),
        ts = d.escape(timestamp),
        cid = d.escape(control_id),
        pid = h.raw(11),
        version = h.raw(12),
    );
    finish(header, d, h.raw(10), error, enhanced)
}

/// A reject for bytes that did not parse as a message: default delimiters, MSA-2 empty since
/// no control id could be read, version 2.5.1.
pub fn reject_unparsed(reason: &ErrorCondition, control_id: &str, timestamp: &str) -> String {
    let d = Delimiters::default();
    let header = format!(
        "MSH|^~\\&|MEDLEDGER||||{}||ACK|{}|P|2.5.1",
        d.escape(timestamp),
        d.escape(control_id)
    );
    finish(header, &d, "", Some(reason), false)
}

fn finish(
    header: String,
    d: &Delimiters,
    original_control_id: &str,
    error: Option<&ErrorCondition>,
    enhanced: bool,
) -> String {
    let f = d.field;
    let c = d.component;
    let code = error.map_or(AckCode::Accept, |e| e.ack).code(enhanced);
    let mut out = header;
    out.push('\r');
    out.push_str(&format!("MSA{f}{code}{f}{original_control_id}"));
    if let Some(e) = error {
        out.push_str(&format!("{f}{}", d.escape(&e.text)));
        out.push('\r');
        let location = e.location.as_ref().map_or(String::new(), |(seg, field)| {
            format!("{}{c}{}{c}{field}", d.escape(seg), e.sequence)
        });
        out.push_str(&format!(
            "ERR{f}{f}{location}{f}{code}{c}{name}{c}HL70357{f}E{f}{f}{f}{f}{text}",
            code = e.code,
            name = e.code_name(),
            text = d.escape(&e.text),
        ));
    }
    out.push('\r');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(extra_msh: &str) -> Message {
        Message::parse(&format!(
            "MSH|^~\\&|LAB|HOSP^1.2.3^ISO|EHR|MEDLEDGER|20240101120000||ORU^R01^ORU_R01|MSG-7|P|2.5.1{extra_msh}\rPID|1||42^^^HOSP^MR"
        ))
        .expect("parse")
    }

    #[test]
    fn an_accept_swaps_sender_and_receiver_and_quotes_the_control_id() {
        let ack = acknowledge(&message(""), None, "ACK-1", "20240101120001");
        let parsed = Message::parse(&ack).expect("the ACK parses");
        let h = parsed.header();
        assert_eq!(h.raw(3), "EHR");
        assert_eq!(h.raw(4), "MEDLEDGER");
        assert_eq!(h.raw(5), "LAB");
        assert_eq!(h.raw(6), "HOSP^1.2.3^ISO");
        assert_eq!(parsed.message_type(), ("ACK".into(), "R01".into()));
        assert_eq!(parsed.control_id(), "ACK-1");
        assert_eq!(parsed.value("MSA", 1).text(), "AA");
        assert_eq!(parsed.value("MSA", 2).text(), "MSG-7");
        assert!(parsed.first("ERR").is_none());
    }

    #[test]
    fn a_refusal_names_code_and_position_and_escapes_its_text() {
        let e = ErrorCondition::new(AckCode::Error, 101, "PID-3 | is required").at("PID", 3);
        let ack = acknowledge(&message(""), Some(&e), "ACK-2", "20240101120001");
        let parsed = Message::parse(&ack).expect("parse");
        assert_eq!(parsed.value("MSA", 1).text(), "AE");
        assert_eq!(parsed.value("MSA", 3).text(), "PID-3 | is required");
        let err = parsed.value("ERR", 2);
        assert_eq!(
            (err.component(1).text(), err.component(3).text()),
            ("PID".into(), "3".into())
        );
        assert_eq!(parsed.value("ERR", 3).component(1).text(), "101");
        assert_eq!(parsed.value("ERR", 4).text(), "E");
        assert_eq!(parsed.value("ERR", 8).text(), "PID-3 | is required");
    }

    #[test]
    fn enhanced_mode_answers_with_commit_codes() {
        let e = ErrorCondition::new(AckCode::Reject, 200, "unsupported");
        let ack = acknowledge(&message("|||AL|NE"), Some(&e), "A", "2024");
        assert_eq!(
            Message::parse(&ack).expect("parse").value("MSA", 1).text(),
            "CR"
        );
        let ack = acknowledge(&message("|||AL|NE"), None, "A", "2024");
        assert_eq!(
            Message::parse(&ack).expect("parse").value("MSA", 1).text(),
            "CA"
        );
    }

    #[test]
    fn enhanced_mode_sends_what_msh_15_asks_for() {
        for (msh15, accepted, wanted) in [
            ("", true, true),
            ("", false, true),
            ("|||AL", true, true),
            ("|||NE", true, false),
            ("|||NE", false, false),
            ("|||ER", true, false),
            ("|||ER", false, true),
            ("|||SU", true, true),
            ("|||SU", false, false),
        ] {
            assert_eq!(
                ack_wanted(&message(msh15), accepted),
                wanted,
                "{msh15} {accepted}"
            );
        }
    }

    #[test]
    fn an_unparsed_message_is_rejected_without_a_control_id() {
        let e = ErrorCondition::new(AckCode::Reject, 100, "no MSH");
        let parsed = Message::parse(&reject_unparsed(&e, "X", "2024")).expect("parse");
        assert_eq!(parsed.value("MSA", 1).text(), "AR");
        assert_eq!(parsed.value("MSA", 2).text(), "");
        assert_eq!(parsed.value("ERR", 3).component(1).text(), "100");
    }
}
