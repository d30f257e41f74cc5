//! A model built against `trademl:model@0.2.0` (`wit/model.wit` here: the
//! real contract with its version changed), which the host must refuse at
//! load time with a message naming both versions. Otherwise a working model:
//! `y = x`.

#[allow(unsafe_op_in_unsafe_fn)]
mod bindings {
    wit_bindgen::generate!({ path: "wit", world: "model" });
}

use bindings::exports::trademl::model::predict::Guest;
use bindings::trademl::model::types::{Datatype, Error, ModelMetadata, Tensor, TensorSpec};

struct Identity;

impl Guest for Identity {
    fn metadata() -> ModelMetadata {
        let spec = |name: &str| TensorSpec {
            name: name.to_string(),
            datatype: Datatype::Fp64,
            shape: vec![-1],
            description: "any number".to_string(),
        };
        ModelMetadata {
            name: "other-version".to_string(),
            version: "1.0.0".to_string(),
            description: "Returns x (built against trademl:model@0.2.0).".to_string(),
            inputs: vec![spec("x")],
            outputs: vec![spec("y")],
        }
    }

    fn predict(inputs: Vec<Tensor>) -> Result<Vec<Tensor>, Error> {
        let mut x = inputs
            .into_iter()
            .next()
            .ok_or_else(|| Error::InvalidInput("missing x".to_string()))?;
        x.name = "y".to_string();
        Ok(vec![x])
    }
}

bindings::export!(Identity with_types_in bindings);
