use super::*;
use serde_json::json;

fn parse(v: Value) -> Result<Tensor, String> {
    serde_json::from_value(v).map_err(|e| e.to_string())
}

fn parse_str(s: &str) -> Result<Tensor, String> {
    serde_json::from_str(s).map_err(|e| e.to_string())
}

#[test]
fn datatype_names() {
    for d in Datatype::ALL {
        assert_eq!(d.as_str().parse::<Datatype>().unwrap(), d);
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            format!("\"{}\"", d.as_str())
        );
    }
    let e = serde_json::from_str::<Datatype>("\"UINT8\"")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("UINT8") && e.contains("FP32, FP64, INT64, BOOL, BYTES"),
        "{e}"
    );
    let e = parse(json!({"name": "x", "datatype": "FP16", "shape": [1], "data": [1]})).unwrap_err();
    assert!(e.contains("\"x\"") && e.contains("FP16"), "{e}");
}

#[test]
fn round_trip_every_datatype() {
    let tensors = vec![
        Tensor::new("a", vec![2], TensorData::Fp32(vec![1.5, -2.0])),
        Tensor::new("b", vec![1, 2], TensorData::Fp64(vec![0.1, 1e300])),
        Tensor::new("c", vec![3], TensorData::Int64(vec![i64::MIN, 0, i64::MAX])),
        Tensor::new("d", vec![2], TensorData::Bool(vec![true, false])),
        Tensor::new(
            "e",
            vec![2],
            TensorData::Bytes(vec![b"hi".to_vec(), "é".into()]),
        ),
    ];
    for t in tensors {
        let s = serde_json::to_string(&t).unwrap();
        assert_eq!(parse_str(&s).unwrap(), t, "{s}");
    }
    let mut t = Tensor::new("p", vec![0], TensorData::Fp64(vec![]));
    t.parameters = Some(Map::from_iter([("k".to_string(), json!(1))]));
    let v = serde_json::to_value(&t).unwrap();
    assert_eq!(
        v,
        json!({"name": "p", "datatype": "FP64", "shape": [0], "data": [], "parameters": {"k": 1}})
    );
    assert_eq!(parse(v).unwrap(), t);
}

#[test]
fn bytes_serialise_lossy() {
    let t = Tensor::new("t", vec![1], TensorData::Bytes(vec![vec![b'a', 0xff]]));
    assert_eq!(
        serde_json::to_value(&t).unwrap()["data"],
        json!(["a\u{fffd}"])
    );
}

#[test]
fn nested_data_flattens_row_major_and_any_field_order() {
    let t = parse(
        json!({"data": [[1, 2, 3], [4, 5, 6]], "shape": [2, 3], "name": "m", "datatype": "INT64"}),
    )
    .unwrap();
    assert_eq!(t.data, TensorData::Int64(vec![1, 2, 3, 4, 5, 6]));
}

#[test]
fn element_count_must_match_shape() {
    let e =
        parse(json!({"name": "recency_days", "datatype": "FP64", "shape": [4], "data": [1, 2, 3]}))
            .unwrap_err();
    assert!(
        e.contains("tensor \"recency_days\": data has 3 elements but shape [4] holds 4"),
        "{e}"
    );
    let e = parse(json!({"name": "x", "datatype": "FP64", "shape": [u64::MAX, 4], "data": []}))
        .unwrap_err();
    assert!(e.contains("too large"), "{e}");
}

#[test]
fn elements_are_checked_per_datatype() {
    let cases = [
        (
            json!({"name": "x", "datatype": "FP64", "shape": [3], "data": [1, 2, "abc"]}),
            "tensor \"x\": element 2 is \"abc\", expected a number for FP64",
        ),
        (
            json!({"name": "x", "datatype": "FP64", "shape": [1], "data": [null]}),
            "element 0 is null",
        ),
        (
            json!({"name": "x", "datatype": "FP64", "shape": [1], "data": [{"a": 1}]}),
            "element 0 is an object",
        ),
        (
            json!({"name": "i", "datatype": "INT64", "shape": [2], "data": [1, 1.5]}),
            "element 1 is 1.5, expected an integer for INT64",
        ),
        (
            json!({"name": "i", "datatype": "INT64", "shape": [1], "data": [u64::MAX]}),
            "out of the INT64 range",
        ),
        (
            json!({"name": "i", "datatype": "INT64", "shape": [1], "data": [1e19]}),
            "out of the INT64 range",
        ),
        (
            json!({"name": "b", "datatype": "BOOL", "shape": [1], "data": [1]}),
            "element 0 is 1, expected true or false for BOOL",
        ),
        (
            json!({"name": "s", "datatype": "BYTES", "shape": [1], "data": [3]}),
            "expected a string for BYTES",
        ),
        (
            json!({"name": "f", "datatype": "FP32", "shape": [1], "data": [1e39]}),
            "out of the FP32 range",
        ),
        (
            json!({"name": "f", "datatype": "FP32", "shape": [1], "data": [true]}),
            "element 0 is true, expected a number for FP32",
        ),
    ];
    for (v, want) in cases {
        let e = parse(v.clone()).unwrap_err();
        assert!(e.contains(want), "{v}: {e}");
    }
    let t =
        parse(json!({"name": "i", "datatype": "INT64", "shape": [2], "data": [3.0, -4]})).unwrap();
    assert_eq!(t.data, TensorData::Int64(vec![3, -4]));
}

#[test]
fn missing_fields_are_named() {
    let e = parse(json!({"name": "x", "shape": [1], "data": [1]})).unwrap_err();
    assert!(
        e.contains("tensor \"x\": missing field \"datatype\""),
        "{e}"
    );
    let e = parse(json!({"datatype": "FP64", "shape": [1], "data": [1]})).unwrap_err();
    assert!(e.contains("no \"name\""), "{e}");
    let e =
        parse(json!({"name": "x", "datatype": "FP64", "shape": [-1], "data": [1]})).unwrap_err();
    assert!(e.contains("shape"), "{e}");
    let e = parse(json!({"name": "x", "datatype": "FP64", "shape": [1], "data": 1})).unwrap_err();
    assert!(e.contains("array"), "{e}");
}

#[test]
fn big_request_parses() {
    let n = 200_000;
    let data: Vec<String> = (0..n).map(|i| format!("{}.5", i)).collect();
    let body = format!(
        r#"{{"inputs": [{{"name": "x", "datatype": "FP64", "shape": [{n}], "data": [{}]}}]}}"#,
        data.join(",")
    );
    let start = std::time::Instant::now();
    let req: InferenceRequest = serde_json::from_str(&body).unwrap();
    assert_eq!(req.inputs[0].data.len(), n);
    // Generous: only catches a quadratic blow-up, not a benchmark.
    assert!(start.elapsed().as_secs() < 20);
}

#[test]
fn request_and_response_shapes() {
    let req: InferenceRequest = serde_json::from_value(json!({
        "id": "42",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}],
        "outputs": [{"name": "y"}]
    }))
    .unwrap();
    assert_eq!(req.id.as_deref(), Some("42"));
    assert_eq!(req.outputs.as_ref().unwrap()[0].name, "y");
    let v = serde_json::to_value(&req).unwrap();
    assert!(v.get("parameters").is_none());
    assert!(v["outputs"][0].get("parameters").is_none());
    let resp = InferenceResponse {
        model_name: "m".into(),
        model_version: None,
        id: None,
        parameters: None,
        outputs: vec![],
    };
    assert_eq!(
        serde_json::to_value(&resp).unwrap(),
        json!({"model_name": "m", "outputs": []})
    );
}

fn spec(dt: Datatype, shape: &[i64]) -> TensorSpec {
    TensorSpec {
        name: "x".into(),
        datatype: dt,
        shape: shape.to_vec(),
        description: String::new(),
    }
}

#[test]
fn check_tensor_refusals() {
    let t = Tensor::new("x", vec![2, 3], TensorData::Fp64(vec![0.0; 6]));
    check_tensor(&t, &spec(Datatype::Fp64, &[-1, 3])).unwrap();
    let e = check_tensor(&t, &spec(Datatype::Fp32, &[-1, 3])).unwrap_err();
    assert_eq!(e, "tensor \"x\": datatype is FP64, expected FP32");
    let e = check_tensor(&t, &spec(Datatype::Fp64, &[-1, 4])).unwrap_err();
    assert!(e.contains("shape is [2, 3], expected [-1, 4]"), "{e}");
    let e = check_tensor(&t, &spec(Datatype::Fp64, &[-1])).unwrap_err();
    assert!(e.contains("expected [-1]"), "{e}");
    let bad = Tensor::new("x", vec![2, 3], TensorData::Fp64(vec![0.0; 5]));
    assert!(
        check_tensor(&bad, &spec(Datatype::Fp64, &[-1, 3]))
            .unwrap_err()
            .contains("5 elements")
    );
}

#[test]
fn tensors_close_compares() {
    let a = Tensor::new("y", vec![3], TensorData::Fp64(vec![1.0, 0.0, 1e6]));
    let b = Tensor::new(
        "y",
        vec![3],
        TensorData::Fp64(vec![1.0 + 1e-9, 1e-9, 1e6 + 0.1]),
    );
    tensors_close(&a, &b, 1e-6).unwrap();
    let c = Tensor::new("y", vec![3], TensorData::Fp64(vec![1.0, 0.5, 1e6]));
    let e = tensors_close(&a, &c, 1e-6).unwrap_err();
    assert!(e.contains("element 1 is 0.5, expected 0.0"), "{e}");
    let d = Tensor::new("z", vec![3], TensorData::Fp64(vec![1.0, 0.0, 1e6]));
    assert!(tensors_close(&a, &d, 1e-6).unwrap_err().contains("\"z\""));
    let i = Tensor::new("y", vec![3], TensorData::Int64(vec![1, 0, 1]));
    assert!(
        tensors_close(&a, &i, 1e-6)
            .unwrap_err()
            .contains("datatype is INT64")
    );
    let s = Tensor::new("y", vec![1, 3], TensorData::Fp64(vec![1.0, 0.0, 1e6]));
    assert!(
        tensors_close(&a, &s, 1e-6)
            .unwrap_err()
            .contains("shape is [1, 3]")
    );
    let i2 = Tensor::new("y", vec![3], TensorData::Int64(vec![1, 0, 2]));
    assert!(
        tensors_close(&i, &i2, 1e-6)
            .unwrap_err()
            .contains("element 2 is 2, expected 1")
    );
    let t1 = Tensor::new("y", vec![1], TensorData::Bytes(vec![b"a".to_vec()]));
    let t2 = Tensor::new("y", vec![1], TensorData::Bytes(vec![b"b".to_vec()]));
    assert!(
        tensors_close(&t1, &t2, 0.0)
            .unwrap_err()
            .contains("element 0")
    );
    let n1 = Tensor::new("y", vec![1], TensorData::Fp32(vec![f32::NAN]));
    tensors_close(&n1, &n1, 0.0).unwrap();
}
