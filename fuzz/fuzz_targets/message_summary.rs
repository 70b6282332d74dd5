//! Any bytes delivered as a message are summarized without a panic, and every part's offsets
//! lie inside the message.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mailgate::mail::check_summary_invariants(data);
});
