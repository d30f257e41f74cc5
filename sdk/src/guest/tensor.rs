//! Helpers for reading input tensors and building output tensors.
//!
//! Every refusal is an [`Error::InvalidInput`] whose message names the input
//! and says what was expected and what came, so the host can pass it to the
//! caller as an HTTP 400 unchanged. The helpers are plain Rust and run
//! natively as well as inside a component.

use super::{Datatype, Error, Tensor, TensorData, TensorSpec};

fn invalid(msg: String) -> Error {
    Error::InvalidInput(msg)
}

/// The OIP name of a datatype (`FP64`, `BYTES`, ...).
pub fn datatype_name(d: Datatype) -> &'static str {
    match d {
        Datatype::Fp32 => "FP32",
        Datatype::Fp64 => "FP64",
        Datatype::Int64 => "INT64",
        Datatype::Boolean => "BOOL",
        Datatype::Bytes => "BYTES",
    }
}

/// The datatype of a tensor's data.
pub fn datatype_of(data: &TensorData) -> Datatype {
    match data {
        TensorData::Fp32(_) => Datatype::Fp32,
        TensorData::Fp64(_) => Datatype::Fp64,
        TensorData::Int64(_) => Datatype::Int64,
        TensorData::Boolean(_) => Datatype::Boolean,
        TensorData::Bytes(_) => Datatype::Bytes,
    }
}

/// The number of elements a tensor's data holds.
pub fn data_len(data: &TensorData) -> usize {
    match data {
        TensorData::Fp32(v) => v.len(),
        TensorData::Fp64(v) => v.len(),
        TensorData::Int64(v) => v.len(),
        TensorData::Boolean(v) => v.len(),
        TensorData::Bytes(v) => v.len(),
    }
}

/// Renders a shape as `[2, 3]`.
fn shape_str(shape: &[u64]) -> String {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    format!("[{}]", dims.join(", "))
}

/// Checks that the element count equals the product of the shape.
fn check_count(t: &Tensor) -> Result<(), Error> {
    let holds = t
        .shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            invalid(format!(
                "input \"{}\": shape {} is too large",
                t.name,
                shape_str(&t.shape)
            ))
        })?;
    let len = data_len(&t.data) as u64;
    if len != holds {
        return Err(invalid(format!(
            "input \"{}\": data has {len} elements but shape {} holds {holds}",
            t.name,
            shape_str(&t.shape)
        )));
    }
    Ok(())
}

/// The input called `name`.
///
/// A missing input is refused with a message naming it and listing the
/// inputs the request carried.
pub fn find<'a>(inputs: &'a [Tensor], name: &str) -> Result<&'a Tensor, Error> {
    inputs.iter().find(|t| t.name == name).ok_or_else(|| {
        let present: Vec<String> = inputs.iter().map(|t| format!("\"{}\"", t.name)).collect();
        let present = if present.is_empty() {
            "none".to_string()
        } else {
            present.join(", ")
        };
        invalid(format!(
            "missing input \"{name}\"; the request has inputs: {present}"
        ))
    })
}

/// Numbers of a column input as `f64`: shape `[n]` or `[n, 1]`, datatype
/// `FP64`, `FP32` or `INT64`.
pub fn column_f64(inputs: &[Tensor], name: &str) -> Result<Vec<f64>, Error> {
    let t = find(inputs, name)?;
    match t.shape.as_slice() {
        [_] | [_, 1] => {}
        _ => {
            return Err(invalid(format!(
                "input \"{name}\": shape {} is not a column; expected [n] or [n, 1]",
                shape_str(&t.shape)
            )));
        }
    }
    numbers(t)
}

/// A matrix input with `cols` columns as `(rows, row-major values)`: shape
/// `[n, cols]`, datatype `FP64`, `FP32` or `INT64`.
pub fn matrix_f64(inputs: &[Tensor], name: &str, cols: usize) -> Result<(usize, Vec<f64>), Error> {
    let t = find(inputs, name)?;
    let rows = match t.shape.as_slice() {
        [rows, c] if *c == cols as u64 => *rows,
        _ => {
            return Err(invalid(format!(
                "input \"{name}\": shape {} is not a matrix with {cols} columns; expected [n, {cols}]",
                shape_str(&t.shape)
            )));
        }
    };
    let values = numbers(t)?;
    let rows = usize::try_from(rows)
        .map_err(|_| invalid(format!("input \"{name}\": {rows} rows is too many")))?;
    Ok((rows, values))
}

fn numbers(t: &Tensor) -> Result<Vec<f64>, Error> {
    let values = match &t.data {
        TensorData::Fp64(v) => v.clone(),
        TensorData::Fp32(v) => v.iter().map(|&x| f64::from(x)).collect(),
        TensorData::Int64(v) => v.iter().map(|&x| x as f64).collect(),
        other => {
            return Err(invalid(format!(
                "input \"{}\": datatype is {}, expected FP64, FP32 or INT64",
                t.name,
                datatype_name(datatype_of(other))
            )));
        }
    };
    check_count(t)?;
    Ok(values)
}

/// The texts of a `BYTES` input, in row-major order. Each element must be
/// valid UTF-8.
pub fn texts(inputs: &[Tensor], name: &str) -> Result<Vec<String>, Error> {
    let t = find(inputs, name)?;
    let TensorData::Bytes(items) = &t.data else {
        return Err(invalid(format!(
            "input \"{name}\": datatype is {}, expected BYTES",
            datatype_name(datatype_of(&t.data))
        )));
    };
    check_count(t)?;
    items
        .iter()
        .enumerate()
        .map(|(i, b)| {
            String::from_utf8(b.clone()).map_err(|e| {
                invalid(format!(
                    "input \"{name}\": element {i} is not valid UTF-8 (at byte {})",
                    e.utf8_error().valid_up_to()
                ))
            })
        })
        .collect()
}

/// Checks that every input column has the same number of rows and returns
/// that number. Give `(input name, row count)` pairs. No columns → 0 rows.
pub fn same_rows(columns: &[(&str, usize)]) -> Result<usize, Error> {
    let Some(&(first, rows)) = columns.first() else {
        return Ok(0);
    };
    for &(name, n) in &columns[1..] {
        if n != rows {
            return Err(invalid(format!(
                "input \"{name}\" has {n} rows but \"{first}\" has {rows}; every input must have the same number of rows"
            )));
        }
    }
    Ok(rows)
}

/// An `FP64` tensor.
pub fn fp64(name: &str, shape: Vec<u64>, data: Vec<f64>) -> Tensor {
    Tensor {
        name: name.to_string(),
        shape,
        data: TensorData::Fp64(data),
    }
}

/// An `FP32` tensor.
pub fn fp32(name: &str, shape: Vec<u64>, data: Vec<f32>) -> Tensor {
    Tensor {
        name: name.to_string(),
        shape,
        data: TensorData::Fp32(data),
    }
}

/// An `INT64` tensor.
pub fn int64(name: &str, shape: Vec<u64>, data: Vec<i64>) -> Tensor {
    Tensor {
        name: name.to_string(),
        shape,
        data: TensorData::Int64(data),
    }
}

/// A `BOOL` tensor.
pub fn boolean(name: &str, shape: Vec<u64>, data: Vec<bool>) -> Tensor {
    Tensor {
        name: name.to_string(),
        shape,
        data: TensorData::Boolean(data),
    }
}

/// A `BYTES` tensor holding UTF-8 texts.
pub fn bytes_utf8(name: &str, shape: Vec<u64>, data: Vec<String>) -> Tensor {
    Tensor {
        name: name.to_string(),
        shape,
        data: TensorData::Bytes(data.into_iter().map(String::into_bytes).collect()),
    }
}

/// The description of one input or output (`-1` in `shape` = any size).
pub fn spec(name: &str, datatype: Datatype, shape: &[i64], description: &str) -> TensorSpec {
    TensorSpec {
        name: name.to_string(),
        datatype,
        shape: shape.to_vec(),
        description: description.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(e: Error) -> String {
        match e {
            Error::InvalidInput(m) => m,
            Error::ModelFailure(m) => panic!("expected InvalidInput, got ModelFailure({m})"),
        }
    }

    #[test]
    fn find_names_missing_and_present() {
        let inputs = vec![fp64("a", vec![1], vec![1.0]), fp64("b", vec![1], vec![2.0])];
        assert_eq!(find(&inputs, "b").unwrap().name, "b");
        let m = msg(find(&inputs, "c").unwrap_err());
        assert!(m.contains("\"c\"") && m.contains("\"a\", \"b\""), "{m}");
        let m = msg(find(&[], "c").unwrap_err());
        assert!(m.contains("none"), "{m}");
    }

    #[test]
    fn column_accepts_numeric_types_and_shapes() {
        let inputs = vec![
            fp64("a", vec![2], vec![1.0, 2.0]),
            fp32("b", vec![2, 1], vec![1.5, 2.5]),
            int64("c", vec![2], vec![3, 4]),
        ];
        assert_eq!(column_f64(&inputs, "a").unwrap(), vec![1.0, 2.0]);
        assert_eq!(column_f64(&inputs, "b").unwrap(), vec![1.5, 2.5]);
        assert_eq!(column_f64(&inputs, "c").unwrap(), vec![3.0, 4.0]);
    }

    #[test]
    fn column_refuses_wrong_datatype() {
        let inputs = vec![boolean("a", vec![1], vec![true])];
        let m = msg(column_f64(&inputs, "a").unwrap_err());
        assert!(
            m.contains("\"a\"") && m.contains("BOOL") && m.contains("FP64"),
            "{m}"
        );
        let inputs = vec![bytes_utf8("t", vec![1], vec!["x".into()])];
        let m = msg(column_f64(&inputs, "t").unwrap_err());
        assert!(m.contains("BYTES"), "{m}");
    }

    #[test]
    fn column_refuses_wrong_shape_and_count() {
        let inputs = vec![fp64("a", vec![1, 2], vec![1.0, 2.0])];
        let m = msg(column_f64(&inputs, "a").unwrap_err());
        assert!(m.contains("[1, 2]") && m.contains("[n]"), "{m}");
        let inputs = vec![fp64("a", vec![4], vec![1.0, 2.0, 3.0])];
        let m = msg(column_f64(&inputs, "a").unwrap_err());
        assert_eq!(m, "input \"a\": data has 3 elements but shape [4] holds 4");
        let inputs = vec![fp64("a", vec![u64::MAX, 2], vec![])];
        assert!(msg(matrix_f64(&inputs, "a", 2).unwrap_err()).contains("too large"));
    }

    #[test]
    fn missing_column_is_refused() {
        let m = msg(column_f64(&[], "a").unwrap_err());
        assert!(m.contains("missing input \"a\""), "{m}");
    }

    #[test]
    fn matrix_reads_rows() {
        let inputs = vec![fp64("m", vec![2, 3], vec![1., 2., 3., 4., 5., 6.])];
        let (rows, v) = matrix_f64(&inputs, "m", 3).unwrap();
        assert_eq!(rows, 2);
        assert_eq!(v.len(), 6);
        let m = msg(matrix_f64(&inputs, "m", 2).unwrap_err());
        assert!(m.contains("2 columns") && m.contains("[2, 3]"), "{m}");
        let inputs = vec![fp64("m", vec![2, 3], vec![1.0])];
        assert!(msg(matrix_f64(&inputs, "m", 3).unwrap_err()).contains("data has 1 elements"));
        let inputs = vec![boolean("m", vec![1, 1], vec![true])];
        assert!(msg(matrix_f64(&inputs, "m", 1).unwrap_err()).contains("BOOL"));
    }

    #[test]
    fn texts_reads_and_refuses() {
        let inputs = vec![bytes_utf8("t", vec![2], vec!["good".into(), "bad".into()])];
        assert_eq!(texts(&inputs, "t").unwrap(), vec!["good", "bad"]);
        let inputs = vec![Tensor {
            name: "t".into(),
            shape: vec![2],
            data: TensorData::Bytes(vec![b"ok".to_vec(), vec![b'a', 0xff]]),
        }];
        let m = msg(texts(&inputs, "t").unwrap_err());
        assert!(m.contains("element 1") && m.contains("UTF-8"), "{m}");
        let inputs = vec![fp64("t", vec![1], vec![1.0])];
        let m = msg(texts(&inputs, "t").unwrap_err());
        assert!(m.contains("FP64") && m.contains("BYTES"), "{m}");
        let inputs = vec![bytes_utf8("t", vec![3], vec!["a".into()])];
        assert!(msg(texts(&inputs, "t").unwrap_err()).contains("shape [3] holds 3"));
    }

    #[test]
    fn same_rows_checks() {
        assert_eq!(same_rows(&[]).unwrap(), 0);
        assert_eq!(same_rows(&[("a", 3), ("b", 3)]).unwrap(), 3);
        let m = msg(same_rows(&[("a", 3), ("b", 2)]).unwrap_err());
        assert!(
            m.contains("\"b\" has 2 rows") && m.contains("\"a\" has 3"),
            "{m}"
        );
    }

    #[test]
    fn constructors_and_spec() {
        let t = int64("n", vec![2], vec![1, 2]);
        assert_eq!(datatype_of(&t.data), Datatype::Int64);
        assert_eq!(datatype_name(Datatype::Boolean), "BOOL");
        let s = spec("x", Datatype::Fp32, &[-1, 3], "three numbers");
        assert_eq!(s.shape, vec![-1, 3]);
        assert_eq!(s.description, "three numbers");
    }
}
