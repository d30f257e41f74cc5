//! trademl end-to-end tests: the real `trademl` binary, real signed
//! components built by this suite (`tests/guests/`), real HTTP on loopback.
//!
//! One test binary, one module per feature; `support` is the harness. The
//! first test to need them builds the test guests (into
//! `target/test-guests`), makes keys and packs and signs every artifact with
//! the CLI; the others reuse them.

mod support;

mod authoring;
mod cache;
mod cli;
mod hostile;
mod hot_swap;
mod http;
mod interface;
mod onnx;
mod segmentation;
mod shipped;
mod signatures;
