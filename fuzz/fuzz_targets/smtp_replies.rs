//! Arbitrary bytes from a remote SMTP server answering the outbound queue's client (greeting,
//! EHLO, AUTH, MAIL, two RCPTs, DATA): a result for each recipient, never a panic or a hang.
#![no_main]

use std::sync::OnceLock;

static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime")
    });
    let results = runtime.block_on(mailgate::smtp::client::replay(data.to_vec()));
    assert_eq!(results.len(), 2, "one result per recipient");
});
