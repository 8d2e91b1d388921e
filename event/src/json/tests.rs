use super::*;

fn limits() -> Limits {
    Limits::default()
}

fn one(json: &str) -> Result<Event, EventError> {
    decode_event(json.as_bytes(), &limits())
}

fn body(json: &str) -> Vec<Result<Event, EventError>> {
    decode_body(json.as_bytes(), BodyFormat::Auto, &limits()).expect("body decodes")
}

#[test]
fn flattens_nested_objects_with_dots() {
    let e = one(r#"{"http": {"route": "/a", "status_code": 200}, "ok": true}"#).unwrap();
    assert_eq!(e.get("http.route"), Some(&Value::from("/a")));
    assert_eq!(e.get("http.status_code"), Some(&Value::Int(200)));
    assert_eq!(e.get("ok"), Some(&Value::Bool(true)));
    assert_eq!(e.len(), 3);
}

#[test]
fn arrays_and_empty_objects_are_kept_as_json_text() {
    let e = one(r#"{"tags": ["a", {"b": 1}], "empty": {}, "n": null}"#).unwrap();
    assert_eq!(e.get("tags"), Some(&Value::from(r#"["a",{"b":1}]"#)));
    assert_eq!(e.get("empty"), Some(&Value::from("{}")));
    assert_eq!(e.get("n"), Some(&Value::Null));
}

#[test]
fn objects_deeper_than_the_limit_are_kept_whole() {
    let l = Limits {
        max_flatten_depth: 2,
        ..limits()
    };
    let e = decode_event(br#"{"a": {"b": {"c": {"d": 1}}}}"#, &l).unwrap();
    assert_eq!(e.get("a.b"), Some(&Value::from(r#"{"c":{"d":1}}"#)));
    assert_eq!(e.len(), 1);
}

#[test]
fn pathological_nesting_is_a_clear_error_not_a_stack_overflow() {
    let deep = format!("{}1{}", r#"{"a":"#.repeat(100_000), "}".repeat(100_000));
    let err = one(&deep).unwrap_err();
    assert_eq!(err.code(), "invalid_json");
    assert!(err.to_string().contains("recursion limit"), "{err}");
    // arrays nested in a field too
    let deep = format!(
        r#"{{"a": {}1{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(one(&deep).is_err());
}

#[test]
fn duplicate_keys_reject_the_event() {
    assert_eq!(
        one(r#"{"a": 1, "a": 2}"#).unwrap_err(),
        EventError::DuplicateField { name: "a".into() }
    );
    // a dotted key and a nested object that flatten to the same name
    assert_eq!(
        one(r#"{"a.b": 1, "a": {"b": 2}}"#).unwrap_err(),
        EventError::DuplicateField { name: "a.b".into() }
    );
}

#[test]
fn huge_numbers() {
    let e = one(r#"{"i": 9223372036854775807, "u": 18446744073709551615, "f": 1e300, "neg": -9223372036854775808}"#)
        .unwrap();
    assert_eq!(e.get("i"), Some(&Value::Int(i64::MAX)));
    assert_eq!(e.get("u"), Some(&Value::Float(18446744073709551615.0)));
    assert_eq!(e.get("f"), Some(&Value::Float(1e300)));
    assert_eq!(e.get("neg"), Some(&Value::Int(i64::MIN)));
    // beyond u64 serde_json parses as float; beyond f64 it is invalid
    let e = one(r#"{"big": 123456789012345678901234567890}"#).unwrap();
    assert!(matches!(e.get("big"), Some(Value::Float(_))));
    assert_eq!(one(r#"{"x": 1e400}"#).unwrap_err().code(), "invalid_json");
}

#[test]
fn nan_and_infinity_are_not_json() {
    for doc in [r#"{"x": NaN}"#, r#"{"x": Infinity}"#, r#"{"x": -Infinity}"#] {
        assert_eq!(one(doc).unwrap_err().code(), "invalid_json", "{doc}");
    }
}

#[test]
fn invalid_unicode_is_rejected() {
    // a lone surrogate escape
    assert_eq!(
        one(r#"{"x": "\ud800"}"#).unwrap_err().code(),
        "invalid_json"
    );
    // a bad escape
    assert_eq!(one(r#"{"x": "\q"}"#).unwrap_err().code(), "invalid_json");
    // raw invalid UTF-8 bytes inside a string
    let mut raw = br#"{"x": ""#.to_vec();
    raw.extend_from_slice(&[0xff, 0xfe]);
    raw.extend_from_slice(br#""}"#);
    assert_eq!(
        decode_event(&raw, &limits()).unwrap_err().code(),
        "invalid_json"
    );
    // ... also inside an array element that is rejected as not an object: the body is still
    // invalid JSON (a fuzzer found it read as one rejected element)
    let mut arr = br#"[["ok", {"k": ""#.to_vec();
    arr.extend_from_slice(&[0xff, 0xfe]);
    arr.extend_from_slice(br#""}]]"#);
    assert!(matches!(
        decode_body(&arr, BodyFormat::Auto, &limits()),
        Err(BodyError::Json { .. })
    ));
    // a valid surrogate pair is fine
    let e = one(r#"{"x": "\ud83d\ude00"}"#).unwrap();
    assert_eq!(e.get("x"), Some(&Value::from("😀")));
}

#[test]
fn field_count_is_bounded_while_parsing() {
    let l = Limits {
        max_fields_per_event: 3,
        ..limits()
    };
    let err = decode_event(br#"{"a":1,"b":2,"c":3,"d":4,"e":5}"#, &l).unwrap_err();
    assert_eq!(err, EventError::TooManyFields { count: 4, limit: 3 });
}

#[test]
fn non_objects_are_rejected_alone_in_an_array() {
    let out = body(r#"[{"a": 1}, 5, "x", [1, 2], null, {"a": 1, "a": 2}, {"b": 2}]"#);
    assert_eq!(out.len(), 7);
    assert!(out[0].is_ok());
    assert_eq!(
        out[1].as_ref().unwrap_err(),
        &EventError::NotAnObject { found: "a number" }
    );
    assert_eq!(out[2].as_ref().unwrap_err().code(), "not_an_object");
    assert_eq!(out[3].as_ref().unwrap_err().code(), "not_an_object");
    assert_eq!(out[4].as_ref().unwrap_err().code(), "not_an_object");
    assert_eq!(out[5].as_ref().unwrap_err().code(), "duplicate_field");
    assert_eq!(
        out[6].as_ref().unwrap().get("b"),
        Some(&Value::Int(2)),
        "the element after a bad one is kept"
    );
}

#[test]
fn a_broken_array_is_a_body_error() {
    let err = decode_body(br#"[{"a": 1}, {"b": "#, BodyFormat::Auto, &limits()).unwrap_err();
    assert!(matches!(err, BodyError::Json { .. }), "{err}");
}

#[test]
fn ndjson_bad_lines_do_not_sink_neighbours() {
    let out = body("{\"a\": 1}\n{\"a\": \n\n{\"a\": 3}\r\n[1]\n");
    assert_eq!(out.len(), 4);
    assert_eq!(out[0].as_ref().unwrap().get("a"), Some(&Value::Int(1)));
    let err = out[1].as_ref().unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
    assert_eq!(out[2].as_ref().unwrap().get("a"), Some(&Value::Int(3)));
    assert_eq!(out[3].as_ref().unwrap_err().code(), "not_an_object");
}

#[test]
fn pretty_printed_single_object_is_one_event() {
    let out = body("{\n  \"a\": {\n    \"b\": 1\n  }\n}\n");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].as_ref().unwrap().get("a.b"), Some(&Value::Int(1)));
    // and a broken pretty-printed object is one rejection, not one per line
    let out = body("{\n  \"a\": \n");
    assert_eq!(out.len(), 1);
    assert!(out[0].is_err());
}

#[test]
fn explicit_ndjson_format() {
    let out = decode_body(b"{\"a\":1}\n{\"a\":2}", BodyFormat::Ndjson, &limits()).unwrap();
    assert_eq!(out.len(), 2);
}

#[test]
fn body_level_limits() {
    assert_eq!(
        decode_body(b"  \n ", BodyFormat::Auto, &limits()).unwrap_err(),
        BodyError::Empty
    );
    let l = Limits {
        max_body_bytes: 4,
        ..limits()
    };
    assert_eq!(
        decode_body(b"{\"a\":1}", BodyFormat::Auto, &l).unwrap_err(),
        BodyError::TooLarge { len: 7, limit: 4 }
    );
    let l = Limits {
        max_events_per_request: 2,
        ..limits()
    };
    for b in [&b"[{},{},{}]"[..], &b"{}\n{}\n{}"[..]] {
        assert_eq!(
            decode_body(b, BodyFormat::Auto, &l).unwrap_err(),
            BodyError::TooManyEvents { limit: 2 }
        );
    }
}

/// Found by the `native_body` fuzz target: an array two or more elements over the limit was
/// refused as invalid JSON ("trailing characters", 400) instead of as too many events (413),
/// because the parser went on after the visitor stopped.
#[test]
fn an_array_far_over_the_event_limit_is_too_many_events() {
    let l = Limits {
        max_events_per_request: 2,
        ..limits()
    };
    for b in [&b"[{},{},{},{}]"[..], b"[{}, {}, {}, 5, [1], {\"a\": 1}]"] {
        assert_eq!(
            decode_body(b, BodyFormat::Auto, &l).unwrap_err(),
            BodyError::TooManyEvents { limit: 2 }
        );
    }
}

/// Found by the `native_body` fuzz target: a leading form feed (ASCII whitespace, not JSON
/// whitespace) was skipped, so `\x0c[]` read as an empty array and a line of form feeds as a
/// blank line, while a trailing form feed was invalid JSON.
#[test]
fn only_json_whitespace_is_skipped() {
    for b in [&b"\x0c[]"[..], b"\x0c", b"{}\n\x0c\n"] {
        let out = decode_body(b, BodyFormat::Auto, &limits()).unwrap();
        let codes: Vec<_> = out
            .iter()
            .map(|r| r.as_ref().err().map(EventError::code))
            .collect();
        assert_eq!(codes.last(), Some(&Some("invalid_json")), "{b:?}: {out:?}");
    }
    assert_eq!(
        decode_body(b" \t\r\n", BodyFormat::Auto, &limits()).unwrap_err(),
        BodyError::Empty
    );
}

#[test]
fn trailing_garbage_rejects_a_single_object() {
    assert_eq!(one(r#"{"a": 1} x"#).unwrap_err().code(), "invalid_json");
}

#[test]
fn encode_round_trips_flat_events() {
    let e = one(r#"{"a": {"b": 1.5}, "s": "q\"", "n": null, "t": true, "i": -2}"#).unwrap();
    let again = one(&e.to_json()).unwrap();
    assert_eq!(e, again);
}
