//! The guest side: the generated bindings of `trademl:model@0.1.0`, the
//! [`Model`] trait a model implements, and the [`tensor`] helpers.

/// The bindings `wit-bindgen` generates from `wit/model.wit` (world `model`).
///
/// Model authors rarely name this module: the types are re-exported at the
/// crate root and [`export_model!`](crate::export_model) wires a type that
/// implements [`Model`] to the component's exports.
#[allow(missing_docs, clippy::all, unsafe_op_in_unsafe_fn)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "model",
        pub_export_macro: true,
        export_macro_name: "export_model",
        default_bindings_module: "trademl_sdk::bindings",
        runtime_path: "trademl_sdk::__private::wit_bindgen::rt",
        additional_derives: [PartialEq],
    });
}

pub mod arena;
pub mod tensor;

pub use arena::CallArena;
pub use bindings::exports::trademl::model::predict::Guest as Model;
pub use bindings::trademl::model::types::{
    Datatype, Error, ModelMetadata, Tensor, TensorData, TensorSpec,
};
