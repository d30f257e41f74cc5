//! Tensors between the `trademl:model` types and tract's.

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::bail;

use crate::trademl::model::types::{Datatype, Error, Tensor, TensorData, TensorSpec};

/// The trademl datatype of a tract element type, or why there is none.
pub fn datatype(dt: DatumType) -> TractResult<Datatype> {
    Ok(match dt {
        DatumType::F32 => Datatype::Fp32,
        DatumType::F64 => Datatype::Fp64,
        DatumType::I64 => Datatype::Int64,
        DatumType::Bool => Datatype::Boolean,
        other => bail!(
            "its element type {other:?} is not one trademl tensors carry (FP32, FP64, INT64, BOOL)"
        ),
    })
}

/// The request's tensors as tract values, in the graph's input order.
/// The host has already checked names, datatypes and shapes against the
/// manifest; this checks again that the data fits the shape.
pub fn inputs_in_graph_order(
    specs: &[TensorSpec],
    mut inputs: Vec<Tensor>,
) -> Result<TVec<TValue>, Error> {
    let mut values = tvec![];
    for spec in specs {
        let at = inputs
            .iter()
            .position(|t| t.name == spec.name)
            .ok_or_else(|| Error::InvalidInput(format!("missing input \"{}\"", spec.name)))?;
        let t = inputs.swap_remove(at);
        let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
        let bad = |e: TractError| Error::InvalidInput(format!("input \"{}\": {e}", spec.name));
        let tensor = match t.data {
            TensorData::Fp32(v) => {
                tract_onnx::prelude::Tensor::from_shape(&shape, &v).map_err(bad)?
            }
            TensorData::Fp64(v) => {
                tract_onnx::prelude::Tensor::from_shape(&shape, &v).map_err(bad)?
            }
            TensorData::Int64(v) => {
                tract_onnx::prelude::Tensor::from_shape(&shape, &v).map_err(bad)?
            }
            TensorData::Boolean(v) => {
                tract_onnx::prelude::Tensor::from_shape(&shape, &v).map_err(bad)?
            }
            TensorData::Bytes(_) => {
                return Err(Error::InvalidInput(format!(
                    "input \"{}\": BYTES tensors are not ONNX graph inputs here",
                    spec.name
                )));
            }
        };
        values.push(tensor.into_tvalue());
    }
    Ok(values)
}

/// One graph output as a `trademl:model` tensor.
pub fn to_wit(name: &str, value: &TValue) -> Result<Tensor, Error> {
    let fail = |e: TractError| Error::ModelFailure(format!("output \"{name}\": {e}"));
    let data = match value.datum_type() {
        DatumType::F32 => TensorData::Fp32(
            value
                .try_as_plain_ram()
                .map_err(fail)?
                .as_slice::<f32>()
                .map_err(fail)?
                .to_vec(),
        ),
        DatumType::F64 => TensorData::Fp64(
            value
                .try_as_plain_ram()
                .map_err(fail)?
                .as_slice::<f64>()
                .map_err(fail)?
                .to_vec(),
        ),
        DatumType::I64 => TensorData::Int64(
            value
                .try_as_plain_ram()
                .map_err(fail)?
                .as_slice::<i64>()
                .map_err(fail)?
                .to_vec(),
        ),
        DatumType::Bool => TensorData::Boolean(
            value
                .try_as_plain_ram()
                .map_err(fail)?
                .as_slice::<bool>()
                .map_err(fail)?
                .to_vec(),
        ),
        other => {
            return Err(Error::ModelFailure(format!(
                "output \"{name}\" has element type {other:?}, which trademl tensors do not carry"
            )));
        }
    };
    Ok(Tensor {
        name: name.to_string(),
        shape: value.shape().iter().map(|&d| d as u64).collect(),
        data,
    })
}
