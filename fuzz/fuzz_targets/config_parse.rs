//! Any configuration text is accepted or refused with an error, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = mailgate::config::Config::parse(text, std::path::Path::new("fuzz.toml"));
    }
});
