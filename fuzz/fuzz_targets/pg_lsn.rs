//! `PgLsn`'s text form (`16/B374D848`, as in checkpoints, CLI arguments and server replies):
//! parsing never panics; whatever parses prints back to text that parses to the same LSN;
//! every LSN prints to text that parses back; and its JSON form agrees with `FromStr`.
//!
//! Input: the text (lossy UTF-8); its first 8 bytes are also read as an LSN.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_core::PgLsn;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = text.parse::<PgLsn>();
    match &parsed {
        Ok(lsn) => assert_eq!(lsn.to_string().parse::<PgLsn>().as_ref(), Ok(lsn)),
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let Ok(quoted) = serde_json::to_string(&*text) else {
        panic!("a string does not serialise");
    };
    let from_json = serde_json::from_str::<PgLsn>(&quoted);
    assert_eq!(
        from_json.ok(),
        parsed.ok(),
        "JSON {quoted} and FromStr disagree"
    );

    if let Some(head) = data.first_chunk::<8>() {
        let lsn = PgLsn(u64::from_be_bytes(*head));
        assert_eq!(lsn.to_string().parse::<PgLsn>(), Ok(lsn));
    }
});
