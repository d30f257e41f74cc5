//! `ai.onnx.ml` `Scaler`, which scikit-learn's scalers export to (skl2onnx)
//! and this version of tract does not provide: `Y = (X - offset) * scale`,
//! each attribute one value for every column or one value per column.

use tract_hir::internal::*;
use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir;

/// Adds `Scaler` to the operators the parser knows.
pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("Scaler", scaler);
}

#[derive(Debug, Clone)]
struct Scaler {
    offset: Vec<f32>,
    scale: Vec<f32>,
}

fn scaler(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let offset: Vec<f32> = node
        .get_attr_opt_vec("offset")?
        .unwrap_or_else(|| vec![0.0]);
    let scale: Vec<f32> = node.get_attr_opt_vec("scale")?.unwrap_or_else(|| vec![1.0]);
    Ok((expand(Scaler { offset, scale }), vec![]))
}

impl Expansion for Scaler {
    fn name(&self) -> StaticName {
        "Scaler".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, DatumType::F32)?;
        s.equals(&inputs[0].shape, &outputs[0].shape)?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let mut x = inputs[0];
        if model.outlet_fact(x)?.datum_type != f32::datum_type() {
            x = model.wire_node(
                format!("{prefix}.to_f32"),
                tract_core::ops::cast::cast(f32::datum_type()),
                &[x],
            )?[0];
        }
        let rank = model.outlet_fact(x)?.rank();
        ensure!(rank >= 1, "Scaler expects an input of rank 1 or more");
        // A row of per-column constants, broadcast over the leading axes.
        let row = |v: &[f32]| -> TractResult<Tensor> {
            let mut shape = vec![1usize; rank];
            shape[rank - 1] = v.len();
            Tensor::from_shape(&shape, v)
        };
        let offset = model.add_const(format!("{prefix}.offset"), row(&self.offset)?)?;
        let scale = model.add_const(format!("{prefix}.scale"), row(&self.scale)?)?;
        let centred = model.wire_node(
            format!("{prefix}.sub"),
            tract_core::ops::math::sub(),
            &[x, offset],
        )?[0];
        model.wire_node(
            format!("{prefix}.mul"),
            tract_core::ops::math::mul(),
            &[centred, scale],
        )
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(1)
    }
}
