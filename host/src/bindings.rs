//! The host side of the `trademl:model` world, and the mapping between its
//! tensors and the Open Inference Protocol's.

use trademl_sdk::protocol;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "model",
});

pub use self::trademl::model::types::{
    Datatype, Error as ModelError, ModelMetadata, Tensor, TensorData, TensorSpec,
};

/// Convert a protocol tensor into the component's.
pub fn to_wit(t: protocol::Tensor) -> Tensor {
    let data = match t.data {
        protocol::TensorData::Fp32(v) => TensorData::Fp32(v),
        protocol::TensorData::Fp64(v) => TensorData::Fp64(v),
        protocol::TensorData::Int64(v) => TensorData::Int64(v),
        protocol::TensorData::Bool(v) => TensorData::Boolean(v),
        protocol::TensorData::Bytes(v) => TensorData::Bytes(v),
    };
    Tensor {
        name: t.name,
        shape: t.shape,
        data,
    }
}

/// Convert a component's tensor into the protocol's.
pub fn from_wit(t: Tensor) -> protocol::Tensor {
    let data = match t.data {
        TensorData::Fp32(v) => protocol::TensorData::Fp32(v),
        TensorData::Fp64(v) => protocol::TensorData::Fp64(v),
        TensorData::Int64(v) => protocol::TensorData::Int64(v),
        TensorData::Boolean(v) => protocol::TensorData::Bool(v),
        TensorData::Bytes(v) => protocol::TensorData::Bytes(v),
    };
    protocol::Tensor {
        name: t.name,
        shape: t.shape,
        data,
        parameters: None,
    }
}

/// Convert a component's datatype into the protocol's.
pub fn datatype(d: Datatype) -> protocol::Datatype {
    match d {
        Datatype::Fp32 => protocol::Datatype::Fp32,
        Datatype::Fp64 => protocol::Datatype::Fp64,
        Datatype::Int64 => protocol::Datatype::Int64,
        Datatype::Boolean => protocol::Datatype::Bool,
        Datatype::Bytes => protocol::Datatype::Bytes,
    }
}

/// Convert a component's tensor description into the protocol's.
pub fn spec(s: &TensorSpec) -> protocol::TensorSpec {
    protocol::TensorSpec {
        name: s.name.clone(),
        datatype: datatype(s.datatype),
        shape: s.shape.clone(),
        description: s.description.clone(),
    }
}
