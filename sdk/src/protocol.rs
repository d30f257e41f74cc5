//! Open Inference Protocol v2 (KServe / Triton / MLServer REST) JSON types.
//!
//! [`Tensor`] serialises as `{"name", "datatype", "shape", "data"}` with
//! `data` flat and row-major, and deserialises from flat or nested `data`
//! with every element checked against the datatype. Errors name the tensor
//! and say what is wrong, so the host can answer HTTP 400 with them.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// The element types trademl supports, by their OIP names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Datatype {
    /// `FP32`
    Fp32,
    /// `FP64`
    Fp64,
    /// `INT64`
    Int64,
    /// `BOOL`
    Bool,
    /// `BYTES` (text, one string per element)
    Bytes,
}

/// The OIP datatype names trademl supports, for messages.
pub const SUPPORTED_DATATYPES: &str = "FP32, FP64, INT64, BOOL, BYTES";

impl Datatype {
    /// All supported datatypes.
    pub const ALL: [Datatype; 5] = [
        Datatype::Fp32,
        Datatype::Fp64,
        Datatype::Int64,
        Datatype::Bool,
        Datatype::Bytes,
    ];

    /// The OIP name: `"FP32"`, `"FP64"`, `"INT64"`, `"BOOL"` or `"BYTES"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Datatype::Fp32 => "FP32",
            Datatype::Fp64 => "FP64",
            Datatype::Int64 => "INT64",
            Datatype::Bool => "BOOL",
            Datatype::Bytes => "BYTES",
        }
    }
}

impl fmt::Display for Datatype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Datatype {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Datatype::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| {
                format!("unsupported datatype \"{s}\"; trademl supports {SUPPORTED_DATATYPES}")
            })
    }
}

impl Serialize for Datatype {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Datatype {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// The elements of a tensor, row-major, of one datatype.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    /// `FP32` elements.
    Fp32(Vec<f32>),
    /// `FP64` elements.
    Fp64(Vec<f64>),
    /// `INT64` elements.
    Int64(Vec<i64>),
    /// `BOOL` elements.
    Bool(Vec<bool>),
    /// `BYTES` elements.
    Bytes(Vec<Vec<u8>>),
}

impl TensorData {
    /// The datatype of these elements.
    pub fn datatype(&self) -> Datatype {
        match self {
            TensorData::Fp32(_) => Datatype::Fp32,
            TensorData::Fp64(_) => Datatype::Fp64,
            TensorData::Int64(_) => Datatype::Int64,
            TensorData::Bool(_) => Datatype::Bool,
            TensorData::Bytes(_) => Datatype::Bytes,
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::Fp32(v) => v.len(),
            TensorData::Fp64(v) => v.len(),
            TensorData::Int64(v) => v.len(),
            TensorData::Bool(v) => v.len(),
            TensorData::Bytes(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A named tensor, as OIP requests and responses carry it.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// The input or output name.
    pub name: String,
    /// The size of each dimension.
    pub shape: Vec<u64>,
    /// The elements, row-major.
    pub data: TensorData,
    /// OIP per-tensor parameters, passed through.
    pub parameters: Option<Map<String, Value>>,
}

impl Tensor {
    /// A tensor without parameters.
    pub fn new(name: impl Into<String>, shape: Vec<u64>, data: TensorData) -> Tensor {
        Tensor {
            name: name.into(),
            shape,
            data,
            parameters: None,
        }
    }

    /// The datatype of the tensor's data.
    pub fn datatype(&self) -> Datatype {
        self.data.datatype()
    }

    /// Checks that the element count equals the product of the shape.
    pub fn check_len(&self) -> Result<(), String> {
        check_len(&self.name, &self.shape, self.data.len())
    }
}

/// Renders a shape as `[2, 3]`.
pub fn shape_str<T: fmt::Display>(shape: &[T]) -> String {
    let dims: Vec<String> = shape.iter().map(T::to_string).collect();
    format!("[{}]", dims.join(", "))
}

fn check_len(name: &str, shape: &[u64], len: usize) -> Result<(), String> {
    let holds = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("tensor \"{name}\": shape {} is too large", shape_str(shape)))?;
    if len as u64 != holds {
        return Err(format!(
            "tensor \"{name}\": data has {len} elements but shape {} holds {holds}",
            shape_str(shape)
        ));
    }
    Ok(())
}

struct Lossy<'a>(&'a [Vec<u8>]);

impl Serialize for Lossy<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|b| String::from_utf8_lossy(b)))
    }
}

impl Serialize for Tensor {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = if self.parameters.is_some() { 5 } else { 4 };
        let mut st = s.serialize_struct("Tensor", n)?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("datatype", &self.datatype())?;
        st.serialize_field("shape", &self.shape)?;
        match &self.data {
            TensorData::Fp32(v) => st.serialize_field("data", v)?,
            TensorData::Fp64(v) => st.serialize_field("data", v)?,
            TensorData::Int64(v) => st.serialize_field("data", v)?,
            TensorData::Bool(v) => st.serialize_field("data", v)?,
            TensorData::Bytes(v) => st.serialize_field("data", &Lossy(v))?,
        }
        if let Some(p) = &self.parameters {
            st.serialize_field("parameters", p)?;
        }
        st.end()
    }
}

/// One JSON element of `data`, kept compact until the datatype is known.
enum Elem {
    Int(i64),
    Uint(u64),
    Float(f64),
    Bool(bool),
    Str(String),
    Null,
    Other(&'static str),
}

impl Elem {
    fn describe(&self) -> String {
        match self {
            Elem::Int(v) => v.to_string(),
            Elem::Uint(v) => v.to_string(),
            Elem::Float(v) => v.to_string(),
            Elem::Bool(v) => v.to_string(),
            Elem::Str(s) if s.chars().count() > 40 => {
                format!("\"{}...\"", s.chars().take(40).collect::<String>())
            }
            Elem::Str(s) => format!("\"{s}\""),
            Elem::Null => "null".to_string(),
            Elem::Other(what) => what.to_string(),
        }
    }
}

/// Flattens (possibly nested) JSON arrays into `out`, row-major.
struct Flatten<'a>(&'a mut Vec<Elem>);

impl<'de> DeserializeSeed<'de> for Flatten<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Flatten<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of elements")
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.0.push(Elem::Int(v));
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.0.push(Elem::Uint(v));
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.0.push(Elem::Float(v));
        Ok(())
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.0.push(Elem::Bool(v));
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.0.push(Elem::Str(v.to_string()));
        Ok(())
    }
    fn visit_string<E>(self, v: String) -> Result<(), E> {
        self.0.push(Elem::Str(v));
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.push(Elem::Null);
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        self.0.push(Elem::Null);
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map
            .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
            .is_some()
        {}
        self.0.push(Elem::Other("an object"));
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if let Some(n) = seq.size_hint() {
            self.0.reserve(n);
        }
        while seq.next_element_seed(Flatten(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

/// The raw `data` field: its flattened elements, and whether it was an array.
struct RawData(Vec<Elem>);

impl<'de> Deserialize<'de> for RawData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawData;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of elements (flat or nested, row-major)")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawData, A::Error> {
                let mut out = Vec::new();
                Flatten(&mut out).visit_seq(seq)?;
                Ok(RawData(out))
            }
        }
        d.deserialize_seq(V)
    }
}

/// 2^63 as f64 (exact): integral floats in `-2^63..2^63` convert to i64
/// exactly.
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

fn convert(name: &str, datatype: Datatype, elems: Vec<Elem>) -> Result<TensorData, String> {
    let bad = |i: usize, e: &Elem, expected: &str| {
        format!(
            "tensor \"{name}\": element {i} is {}, expected {expected} for {datatype}",
            e.describe()
        )
    };
    Ok(match datatype {
        Datatype::Fp64 => TensorData::Fp64(
            elems
                .iter()
                .enumerate()
                .map(|(i, e)| match *e {
                    Elem::Int(v) => Ok(v as f64),
                    Elem::Uint(v) => Ok(v as f64),
                    Elem::Float(v) => Ok(v),
                    _ => Err(bad(i, e, "a number")),
                })
                .collect::<Result<_, _>>()?,
        ),
        Datatype::Fp32 => TensorData::Fp32(
            elems
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    let v = match *e {
                        Elem::Int(v) => v as f64,
                        Elem::Uint(v) => v as f64,
                        Elem::Float(v) => v,
                        _ => return Err(bad(i, e, "a number")),
                    };
                    if v.is_finite() && v.abs() > f64::from(f32::MAX) {
                        return Err(format!(
                            "tensor \"{name}\": element {i} is {v}, out of the FP32 range (±{:e})",
                            f32::MAX
                        ));
                    }
                    Ok(v as f32)
                })
                .collect::<Result<_, _>>()?,
        ),
        Datatype::Int64 => TensorData::Int64(
            elems
                .iter()
                .enumerate()
                .map(|(i, e)| match *e {
                    Elem::Int(v) => Ok(v),
                    Elem::Uint(v) => i64::try_from(v).map_err(|_| {
                        format!("tensor \"{name}\": element {i} is {v}, out of the INT64 range")
                    }),
                    Elem::Float(v)
                        if v.fract() == 0.0 && (-TWO_POW_63..TWO_POW_63).contains(&v) =>
                    {
                        Ok(v as i64)
                    }
                    Elem::Float(v) if v.fract() == 0.0 => Err(format!(
                        "tensor \"{name}\": element {i} is {v}, out of the INT64 range"
                    )),
                    _ => Err(bad(i, e, "an integer")),
                })
                .collect::<Result<_, _>>()?,
        ),
        Datatype::Bool => TensorData::Bool(
            elems
                .iter()
                .enumerate()
                .map(|(i, e)| match *e {
                    Elem::Bool(v) => Ok(v),
                    _ => Err(bad(i, e, "true or false")),
                })
                .collect::<Result<_, _>>()?,
        ),
        Datatype::Bytes => TensorData::Bytes(
            elems
                .into_iter()
                .enumerate()
                .map(|(i, e)| match e {
                    Elem::Str(s) => Ok(s.into_bytes()),
                    e => Err(bad(i, &e, "a string")),
                })
                .collect::<Result<_, _>>()?,
        ),
    })
}

impl<'de> Deserialize<'de> for Tensor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Tensor;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a tensor object with name, datatype, shape and data")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tensor, A::Error> {
                let mut name: Option<String> = None;
                let mut datatype: Option<String> = None;
                let mut shape: Option<Vec<u64>> = None;
                let mut data: Option<RawData> = None;
                let mut parameters: Option<Map<String, Value>> = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    let dup =
                        |k: &str| de::Error::custom(format!("duplicate field \"{k}\" in a tensor"));
                    match key.as_ref() {
                        "name" if name.is_some() => return Err(dup("name")),
                        "name" => name = Some(map.next_value()?),
                        "datatype" if datatype.is_some() => return Err(dup("datatype")),
                        "datatype" => datatype = Some(map.next_value()?),
                        "shape" if shape.is_some() => return Err(dup("shape")),
                        "shape" => shape = Some(map.next_value().map_err(|e| {
                            de::Error::custom(format!(
                                "tensor{}: shape must be an array of non-negative integers ({e})",
                                name.as_deref()
                                    .map(|n| format!(" \"{n}\""))
                                    .unwrap_or_default()
                            ))
                        })?),
                        "data" if data.is_some() => return Err(dup("data")),
                        "data" => data = Some(map.next_value()?),
                        "parameters" => parameters = map.next_value()?,
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                let name = name.ok_or_else(|| de::Error::custom("a tensor has no \"name\""))?;
                let missing = |f: &str| {
                    de::Error::custom(format!("tensor \"{name}\": missing field \"{f}\""))
                };
                let datatype = datatype.ok_or_else(|| missing("datatype"))?;
                let shape = shape.ok_or_else(|| missing("shape"))?;
                let RawData(elems) = data.ok_or_else(|| missing("data"))?;
                let datatype: Datatype = datatype
                    .parse()
                    .map_err(|e: String| de::Error::custom(format!("tensor \"{name}\": {e}")))?;
                check_len(&name, &shape, elems.len()).map_err(de::Error::custom)?;
                let data = convert(&name, datatype, elems).map_err(de::Error::custom)?;
                Ok(Tensor {
                    name,
                    shape,
                    data,
                    parameters,
                })
            }
        }
        d.deserialize_map(V)
    }
}

/// The description of an input or output in a manifest (`-1` = any size).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorSpec {
    /// The tensor's name.
    pub name: String,
    /// The element type.
    pub datatype: Datatype,
    /// The shape; `-1` marks a dimension of any size.
    pub shape: Vec<i64>,
    /// What the tensor holds, in words a model user understands.
    #[serde(default)]
    pub description: String,
}

/// Checks a tensor against its spec: same datatype, same rank, and each
/// fixed dimension equal. The message names the tensor, what was expected
/// and what came.
pub fn check_tensor(t: &Tensor, spec: &TensorSpec) -> Result<(), String> {
    if t.datatype() != spec.datatype {
        return Err(format!(
            "tensor \"{}\": datatype is {}, expected {}",
            t.name,
            t.datatype(),
            spec.datatype
        ));
    }
    let fits = t.shape.len() == spec.shape.len()
        && t.shape
            .iter()
            .zip(&spec.shape)
            .all(|(&got, &want)| want < 0 || got == want as u64);
    if !fits {
        return Err(format!(
            "tensor \"{}\": shape is {}, expected {} (-1 = any size)",
            t.name,
            shape_str(&t.shape),
            shape_str(&spec.shape)
        ));
    }
    t.check_len()
}

/// An output a request asks for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestedOutput {
    /// The output's name.
    pub name: String,
    /// OIP per-output parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Map<String, Value>>,
}

/// `POST /v2/models/{name}[/versions/{version}]/infer` request body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InferenceRequest {
    /// An identifier the response echoes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// OIP request parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Map<String, Value>>,
    /// The input tensors.
    pub inputs: Vec<Tensor>,
    /// The outputs wanted (all of them when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<RequestedOutput>>,
}

/// The response body of an inference request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InferenceResponse {
    /// The model's name.
    pub model_name: String,
    /// The version that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// The request's `id`, echoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// OIP response parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Map<String, Value>>,
    /// The output tensors.
    pub outputs: Vec<Tensor>,
}

/// An input or output in a model metadata response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetadataTensor {
    /// The tensor's name.
    pub name: String,
    /// The element type.
    pub datatype: Datatype,
    /// The shape; `-1` = any size.
    pub shape: Vec<i64>,
}

impl From<&TensorSpec> for MetadataTensor {
    fn from(s: &TensorSpec) -> Self {
        MetadataTensor {
            name: s.name.clone(),
            datatype: s.datatype,
            shape: s.shape.clone(),
        }
    }
}

/// `GET /v2/models/{name}[/versions/{version}]` response body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelMetadataResponse {
    /// The model's name.
    pub name: String,
    /// The versions available.
    pub versions: Vec<String>,
    /// The platform, e.g. `trademl_wasm`.
    pub platform: String,
    /// The inputs.
    pub inputs: Vec<MetadataTensor>,
    /// The outputs.
    pub outputs: Vec<MetadataTensor>,
}

/// `GET /v2` response body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerMetadataResponse {
    /// The server's name.
    pub name: String,
    /// The server's version.
    pub version: String,
    /// The OIP extensions supported.
    pub extensions: Vec<String>,
}

/// Compares an expected tensor with an actual one: same name, datatype and
/// shape; floats within `rel_tol` relative tolerance (with the same value
/// as an absolute floor near zero); integers, booleans and bytes exactly.
/// The message gives the first differing element and both values.
pub fn tensors_close(expected: &Tensor, actual: &Tensor, rel_tol: f64) -> Result<(), String> {
    if expected.name != actual.name {
        return Err(format!(
            "expected tensor \"{}\", got \"{}\"",
            expected.name, actual.name
        ));
    }
    let name = &expected.name;
    if expected.datatype() != actual.datatype() {
        return Err(format!(
            "tensor \"{name}\": datatype is {}, expected {}",
            actual.datatype(),
            expected.datatype()
        ));
    }
    if expected.shape != actual.shape {
        return Err(format!(
            "tensor \"{name}\": shape is {}, expected {}",
            shape_str(&actual.shape),
            shape_str(&expected.shape)
        ));
    }
    if expected.data.len() != actual.data.len() {
        return Err(format!(
            "tensor \"{name}\": has {} elements, expected {}",
            actual.data.len(),
            expected.data.len()
        ));
    }
    let close = |e: f64, a: f64| {
        if e.is_nan() || a.is_nan() {
            return e.is_nan() && a.is_nan();
        }
        if e == a {
            return true;
        }
        (e - a).abs() <= rel_tol * e.abs().max(a.abs()).max(1.0)
    };
    let differ = |i: usize, e: &dyn fmt::Debug, a: &dyn fmt::Debug| {
        Err(format!(
            "tensor \"{name}\": element {i} is {a:?}, expected {e:?} (tolerance {rel_tol})"
        ))
    };
    match (&expected.data, &actual.data) {
        (TensorData::Fp64(e), TensorData::Fp64(a)) => {
            for (i, (x, y)) in e.iter().zip(a).enumerate() {
                if !close(*x, *y) {
                    return differ(i, x, y);
                }
            }
        }
        (TensorData::Fp32(e), TensorData::Fp32(a)) => {
            for (i, (x, y)) in e.iter().zip(a).enumerate() {
                if !close(f64::from(*x), f64::from(*y)) {
                    return differ(i, x, y);
                }
            }
        }
        (TensorData::Int64(e), TensorData::Int64(a)) => {
            if let Some(i) = e.iter().zip(a).position(|(x, y)| x != y) {
                return differ(i, &e[i], &a[i]);
            }
        }
        (TensorData::Bool(e), TensorData::Bool(a)) => {
            if let Some(i) = e.iter().zip(a).position(|(x, y)| x != y) {
                return differ(i, &e[i], &a[i]);
            }
        }
        (TensorData::Bytes(e), TensorData::Bytes(a)) => {
            if let Some(i) = e.iter().zip(a).position(|(x, y)| x != y) {
                return differ(
                    i,
                    &String::from_utf8_lossy(&e[i]),
                    &String::from_utf8_lossy(&a[i]),
                );
            }
        }
        _ => unreachable!("datatypes were compared above"),
    }
    Ok(())
}

#[cfg(test)]
mod tests;
