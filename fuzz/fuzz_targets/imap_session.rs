//! Arbitrary bytes from a logged-in client, with INBOX selected or not (the first byte
//! says): the session answers, never panics or hangs.
#![no_main]

use mailgate::harness::{Harness, feed_from_state};
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
    let mut session = harness.session();
    runtime.block_on(feed_from_state(&mut session, data));
});
