//! Nothing to link: this package only holds the `interop` test binary (`main.rs`), which
//! checks the Rust crates against the real Ruby Sidekiq client, API and Web UI.
