//! Any JSON body (or not JSON at all) to any admin API endpoint that takes one, sent by the
//! owner: answered without a 500, and every refusal as a JSON error.
#![no_main]

use std::sync::LazyLock;

static HARNESS: LazyLock<mailgate::harness::Harness> =
    LazyLock::new(mailgate::harness::Harness::new);

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    // Paused time: the throttle's pauses after wrong passwords pass at once.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime")
});

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (status, body) = RUNTIME.block_on(HARNESS.admin_request(data));
    mailgate::harness::check_admin_answer(status, &body);
});
