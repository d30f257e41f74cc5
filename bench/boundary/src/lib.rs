//! The smallest calls a component serves: `nothing`, and `bytes`, one list
//! of bytes in and one out. `trademl-bench` times them beside a model's call
//! (see `host/src/bench/boundary.rs`): what is left of the sandbox's cost
//! when the interface carries a request as bare bytes and nothing reads or
//! builds tensors on either side. With the allocator every model built by
//! `trademl new` has, so that the guest's side is a model's.

// Only the wasm32 build exports the functions; natively the crate is a stub.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

wit_bindgen::generate!({
    path: "wit",
    world: "boundary",
});

trademl_sdk::use_call_arena!();

struct Boundary;

impl Guest for Boundary {
    fn nothing() {}

    fn bytes(input: Vec<u8>, output_len: u32) -> Vec<u8> {
        drop(input);
        vec![0; output_len as usize]
    }
}

#[cfg(target_arch = "wasm32")]
export!(Boundary);
