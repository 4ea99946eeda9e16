//! Palisade workstation agent entry point (the policy-stream issue fills this in).
#![forbid(unsafe_code)]

fn main() {
    eprintln!("palisade-agent: not built yet; see the open policy-stream issue");
    std::process::exit(2);
}
