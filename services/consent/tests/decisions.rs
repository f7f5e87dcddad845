//! The decision table, decided in process.

#![allow(clippy::unwrap_used, missing_docs)]

mod table;

use medledger_consent::domain::decision::Verdict;

#[test]
fn the_decision_table() {
    let cases = table::table();
    assert!(cases.len() >= 25);
    for c in &cases {
        let got = table::run(c);
        match (&c.want, &got) {
            (Ok(basis), Verdict::Permit(b)) => assert_eq!(basis, b, "{}", c.name),
            (Err(fragment), Verdict::Deny(reason)) => {
                assert!(reason.contains(fragment), "{}: {reason}", c.name)
            }
            _ => panic!("{}: expected {:?}, got {got:?}", c.name, c.want),
        }
    }
}
