//! Conversions between the guest bindings' types and the protocol types,
//! when both features are on (native trainers and tests that run a model's
//! Rust code on manifest examples or OIP requests).

use crate::{guest, protocol};

impl From<protocol::Datatype> for guest::Datatype {
    fn from(d: protocol::Datatype) -> Self {
        match d {
            protocol::Datatype::Fp32 => guest::Datatype::Fp32,
            protocol::Datatype::Fp64 => guest::Datatype::Fp64,
            protocol::Datatype::Int64 => guest::Datatype::Int64,
            protocol::Datatype::Bool => guest::Datatype::Boolean,
            protocol::Datatype::Bytes => guest::Datatype::Bytes,
        }
    }
}

impl From<guest::Datatype> for protocol::Datatype {
    fn from(d: guest::Datatype) -> Self {
        match d {
            guest::Datatype::Fp32 => protocol::Datatype::Fp32,
            guest::Datatype::Fp64 => protocol::Datatype::Fp64,
            guest::Datatype::Int64 => protocol::Datatype::Int64,
            guest::Datatype::Boolean => protocol::Datatype::Bool,
            guest::Datatype::Bytes => protocol::Datatype::Bytes,
        }
    }
}

impl From<protocol::TensorData> for guest::TensorData {
    fn from(d: protocol::TensorData) -> Self {
        match d {
            protocol::TensorData::Fp32(v) => guest::TensorData::Fp32(v),
            protocol::TensorData::Fp64(v) => guest::TensorData::Fp64(v),
            protocol::TensorData::Int64(v) => guest::TensorData::Int64(v),
            protocol::TensorData::Bool(v) => guest::TensorData::Boolean(v),
            protocol::TensorData::Bytes(v) => guest::TensorData::Bytes(v),
        }
    }
}

impl From<guest::TensorData> for protocol::TensorData {
    fn from(d: guest::TensorData) -> Self {
        match d {
            guest::TensorData::Fp32(v) => protocol::TensorData::Fp32(v),
            guest::TensorData::Fp64(v) => protocol::TensorData::Fp64(v),
            guest::TensorData::Int64(v) => protocol::TensorData::Int64(v),
            guest::TensorData::Boolean(v) => protocol::TensorData::Bool(v),
            guest::TensorData::Bytes(v) => protocol::TensorData::Bytes(v),
        }
    }
}

/// Drops the OIP `parameters`, which the WIT tensor does not carry.
impl From<protocol::Tensor> for guest::Tensor {
    fn from(t: protocol::Tensor) -> Self {
        guest::Tensor {
            name: t.name,
            shape: t.shape,
            data: t.data.into(),
        }
    }
}

impl From<guest::Tensor> for protocol::Tensor {
    fn from(t: guest::Tensor) -> Self {
        protocol::Tensor {
            name: t.name,
            shape: t.shape,
            data: t.data.into(),
            parameters: None,
        }
    }
}

impl From<protocol::TensorSpec> for guest::TensorSpec {
    fn from(s: protocol::TensorSpec) -> Self {
        guest::TensorSpec {
            name: s.name,
            datatype: s.datatype.into(),
            shape: s.shape,
            description: s.description,
        }
    }
}

impl From<guest::TensorSpec> for protocol::TensorSpec {
    fn from(s: guest::TensorSpec) -> Self {
        protocol::TensorSpec {
            name: s.name,
            datatype: s.datatype.into(),
            shape: s.shape,
            description: s.description,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for d in protocol::Datatype::ALL {
            assert_eq!(protocol::Datatype::from(guest::Datatype::from(d)), d);
        }
        let t = protocol::Tensor::new("x", vec![2], protocol::TensorData::Bool(vec![true, false]));
        let g: guest::Tensor = t.clone().into();
        assert_eq!(g.data, guest::TensorData::Boolean(vec![true, false]));
        assert_eq!(protocol::Tensor::from(g), t);
        let s = protocol::TensorSpec {
            name: "x".into(),
            datatype: protocol::Datatype::Bytes,
            shape: vec![-1],
            description: "d".into(),
        };
        assert_eq!(
            protocol::TensorSpec::from(guest::TensorSpec::from(s.clone())),
            s
        );
    }
}
