//! Arbitrary bytes from an SMTP client in the middle of a transaction (EHLO, MAIL and RCPT
//! done), inbound or on submission: the session answers, never panics or hangs.
#![no_main]

use mailgate::harness::{Harness, feed_smtp_transaction};
use std::sync::OnceLock;

static HARNESS: OnceLock<(Harness, tokio::runtime::Runtime)> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (harness, runtime) = HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        (Harness::new(), runtime)
    });
    let mut session = harness.smtp_session_for(data);
    runtime.block_on(feed_smtp_transaction(&mut session, data));
});
