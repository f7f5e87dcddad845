-- HL7 v2 over MLLP: the acknowledgement of every accepted message, so a message sent again
-- (same MSH-10 from the same sender) is answered without a second write; and the refused
-- messages, encrypted, with the reason they were refused.
CREATE TABLE hl7_accepted (
    sender TEXT NOT NULL,
    control_id TEXT NOT NULL,
    -- Keyed digest of the message: the same control id on other content is no duplicate.
    digest TEXT NOT NULL,
    ack TEXT NOT NULL,
    accepted_at_ms INTEGER NOT NULL,
    PRIMARY KEY (sender, control_id)
);
CREATE TABLE hl7_dead_letters (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    received_at_ms INTEGER NOT NULL,
    sender TEXT NOT NULL,
    control_id TEXT NOT NULL,
    code INTEGER NOT NULL,
    reason TEXT NOT NULL,
    sealed BLOB NOT NULL
);
