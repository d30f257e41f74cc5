//! A component without the model export: what an author gets when the
//! `export_model!` line is missing or the crate targets another world. The
//! host must refuse it at load time, saying what it exports instead.

#[allow(unsafe_op_in_unsafe_fn)]
mod bindings {
    wit_bindgen::generate!({ path: "wit", world: "no-predict" });
}

struct Greeter;

impl bindings::Guest for Greeter {
    fn greet() -> String {
        "hello".to_string()
    }
}

bindings::export!(Greeter with_types_in bindings);
