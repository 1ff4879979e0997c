//! Each transform against the examples in Kafka's (and Confluent's) documentation, and the
//! edge cases: missing field, null value, tombstone, nested struct, schemaless map.

use std::sync::Arc;

use transforms::KafkaTransforms;
use wasmconnect_sdk::prelude::*;
use wasmconnect_sdk::testing::TransformHarness;

fn harness(class: &str, pairs: &[(&str, &str)]) -> TransformHarness<KafkaTransforms> {
    let mut config = Config::new().with(
        "type",
        format!("org.apache.kafka.connect.transforms.{class}"),
    );
    for (k, v) in pairs {
        config.set(*k, *v);
    }
    TransformHarness::configure(config).expect("config is valid")
}

fn config_error(class: &str, pairs: &[(&str, &str)]) -> String {
    let mut config = Config::new().with("type", class);
    for (k, v) in pairs {
        config.set(*k, *v);
    }
    TransformHarness::<KafkaTransforms>::configure(config)
        .expect_err("config is refused")
        .to_string()
}

fn one(h: &mut TransformHarness<KafkaTransforms>, record: Record) -> Outcome {
    h.apply(vec![record]).pop().expect("one outcome")
}

fn kept(h: &mut TransformHarness<KafkaTransforms>, record: Record) -> Record {
    match one(h, record) {
        Outcome::Keep(r) => r,
        other => panic!("expected a kept record, got {other:?}"),
    }
}

fn failed(h: &mut TransformHarness<KafkaTransforms>, record: Record) -> String {
    match one(h, record) {
        Outcome::Failed(m) => m,
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn string() -> Schema {
    Schema::new(SchemaType::String)
}

fn int32() -> Schema {
    Schema::new(SchemaType::Int32)
}

/// A struct value from (name, schema, value) triples.
fn structure(fields: Vec<(&str, Schema, Value)>) -> Data {
    let mut schema = Schema::structure();
    let mut values = Vec::new();
    for (name, s, v) in fields {
        schema = schema.field(name, s);
        values.push(v);
    }
    let schema = Arc::new(schema);
    Data::new(
        schema.clone(),
        Value::Struct(Struct::from_values(schema, values).expect("arity")),
    )
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    )
}

fn field<'a>(data: &'a Data, name: &str) -> Option<&'a Value> {
    match data.value() {
        Value::Struct(s) => s.get(name),
        v @ Value::Map(_) => v.map_get(name),
        _ => None,
    }
}

fn names(data: &Data) -> Vec<String> {
    data.schema
        .as_ref()
        .map(|s| s.fields.iter().map(|f| f.name.clone()).collect())
        .unwrap_or_default()
}

fn sink_record(value: Data) -> Record {
    let mut r = Record::new("orders", value);
    r.partition = Some(3);
    r.offset = Some(42);
    r.timestamp = Some(1_484_124_693_211);
    r
}

#[test]
fn insert_field_adds_static_topic_partition_offset_and_timestamp() {
    // docs/connect.html: InsertField$Value with static.field=MessageSource.
    let mut h = harness(
        "InsertField$Value",
        &[
            ("static.field", "MessageSource"),
            ("static.value", "Kafka Connect framework"),
            ("topic.field", "topic!"),
            ("partition.field", "partition"),
            ("offset.field", "offset"),
            ("timestamp.field", "ts"),
        ],
    );
    let out = kept(
        &mut h,
        sink_record(structure(vec![("id", int32(), Value::Int32(1))])),
    );
    assert_eq!(
        names(&out.value),
        ["id", "topic", "partition", "offset", "ts", "MessageSource"]
    );
    assert_eq!(
        field(&out.value, "MessageSource"),
        Some(&Value::from("Kafka Connect framework"))
    );
    assert_eq!(field(&out.value, "topic"), Some(&Value::from("orders")));
    assert_eq!(field(&out.value, "offset"), Some(&Value::Int64(42)));
    let schema = out.value.schema.as_ref().expect("schema");
    let ts = &schema.field_named("ts").expect("ts").1.schema;
    assert_eq!(
        ts.name.as_deref(),
        Some(wasmconnect_sdk::data::logical::TIMESTAMP)
    );
    assert!(ts.optional);
    assert!(
        !schema
            .field_named("topic")
            .expect("topic")
            .1
            .schema
            .optional,
        "topic! is required"
    );

    // Schemaless: a map gets the same entries.
    let out = kept(
        &mut h,
        sink_record(Data::schemaless(map(vec![("id", Value::Int64(1))]))),
    );
    assert_eq!(field(&out.value, "partition"), Some(&Value::Int32(3)));
    assert_eq!(
        field(&out.value, "ts"),
        Some(&Value::Int64(1_484_124_693_211))
    );

    // A tombstone passes untouched; a string value fails with Kafka's message.
    assert!(kept(&mut h, sink_record(Data::NULL)).value.is_null());
    let msg = failed(&mut h, sink_record(Data::schemaless("text")));
    assert_eq!(
        msg,
        "Only Map objects supported in absence of schema for [field insertion], found: java.lang.String"
    );

    // offset.field on a source record: Kafka refuses.
    let mut source = sink_record(Data::schemaless(map(vec![])));
    source.offset = None;
    assert!(failed(&mut h, source).contains("Only SinkRecord supported"));
}

#[test]
fn replace_field_excludes_includes_and_renames() {
    // Confluent's docs: exclude=c1, renames=foo:c1,bar:c2.
    let value = || {
        structure(vec![
            ("foo", string(), Value::from("a")),
            ("bar", int32(), Value::Int32(7)),
            ("c1", string(), Value::from("gone")),
        ])
    };
    let mut h = harness(
        "ReplaceField$Value",
        &[("exclude", "c1"), ("renames", "foo:c1,bar:c2")],
    );
    let out = kept(&mut h, Record::new("t", value()));
    assert_eq!(names(&out.value), ["c1", "c2"]);
    assert_eq!(field(&out.value, "c1"), Some(&Value::from("a")));
    assert_eq!(field(&out.value, "c2"), Some(&Value::Int32(7)));

    let mut h = harness("ReplaceField$Value", &[("include", "bar,missing")]);
    assert_eq!(
        names(&kept(&mut h, Record::new("t", value())).value),
        ["bar"]
    );
    let out = kept(
        &mut h,
        Record::new(
            "t",
            Data::schemaless(map(vec![("bar", Value::Int64(1)), ("foo", Value::Null)])),
        ),
    );
    assert_eq!(out.value.value(), &map(vec![("bar", Value::Int64(1))]));
    assert!(kept(&mut h, Record::new("t", Data::NULL)).value.is_null());

    assert!(
        config_error("ReplaceField$Value", &[("renames", "foo")])
            .contains("renames: Invalid rename mapping: foo")
    );
}

#[test]
fn mask_field_uses_the_types_empty_value_or_the_replacement() {
    let value = || {
        structure(vec![
            ("ssn", string(), Value::from("123-45-6789")),
            (
                "salary",
                Schema::new(SchemaType::Float64),
                Value::Float64(1000.5),
            ),
            ("age", int32().optional(), Value::Null),
            (
                "vip",
                Schema::new(SchemaType::Boolean),
                Value::Boolean(true),
            ),
        ])
    };
    let mut h = harness("MaskField$Value", &[("fields", "ssn,salary,age,vip")]);
    let out = kept(&mut h, Record::new("t", value()));
    assert_eq!(field(&out.value, "ssn"), Some(&Value::from("")));
    assert_eq!(field(&out.value, "salary"), Some(&Value::Float64(0.0)));
    assert_eq!(field(&out.value, "age"), Some(&Value::Null));
    assert_eq!(field(&out.value, "vip"), Some(&Value::Boolean(false)));

    let mut h = harness(
        "MaskField$Value",
        &[("fields", "ssn"), ("replacement", "***-**-****")],
    );
    let out = kept(&mut h, Record::new("t", value()));
    assert_eq!(field(&out.value, "ssn"), Some(&Value::from("***-**-****")));
    let mut h = harness(
        "MaskField$Value",
        &[("fields", "salary"), ("replacement", "abc")],
    );
    assert_eq!(
        failed(&mut h, Record::new("t", value())),
        "Unable to convert abc (class java.lang.String) to number"
    );
    assert!(config_error("MaskField$Value", &[]).contains("fields"));
}

#[test]
fn value_to_key_builds_the_key_from_value_fields() {
    // Confluent's docs: fields=userId,city,state.
    let mut h = harness("ValueToKey", &[("fields", "userId,city")]);
    let value = structure(vec![
        ("userId", int32(), Value::Int32(1)),
        ("city", string(), Value::from("Oslo")),
        ("state", string(), Value::from("-")),
    ]);
    let out = kept(&mut h, Record::new("t", value));
    assert_eq!(names(&out.key), ["userId", "city"]);
    assert_eq!(field(&out.key, "city"), Some(&Value::from("Oslo")));
    let out = kept(
        &mut h,
        Record::new(
            "t",
            Data::schemaless(map(vec![("userId", Value::Int64(5))])),
        ),
    );
    assert_eq!(
        out.key.value(),
        &map(vec![("userId", Value::Int64(5)), ("city", Value::Null)])
    );
    let missing = structure(vec![("userId", int32(), Value::Int32(1))]);
    assert_eq!(
        failed(&mut h, Record::new("t", missing)),
        "Field does not exist: city"
    );
    assert!(failed(&mut h, Record::new("t", Data::NULL)).contains("found: null"));
}

#[test]
fn extract_field_takes_one_field_or_a_nested_path() {
    // docs: ExtractField$Key field=id turns {id: 42, ...} into 42.
    let mut h = harness("ExtractField$Key", &[("field", "id")]);
    let key = structure(vec![
        ("id", int32(), Value::Int32(42)),
        ("name", string(), Value::from("x")),
    ]);
    let out = kept(&mut h, Record::new("t", Data::NULL).with_key(key));
    assert_eq!(out.key.value(), &Value::Int32(42));
    assert_eq!(
        out.key.schema.as_ref().map(|s| s.schema_type),
        Some(SchemaType::Int32)
    );
    let out = kept(
        &mut h,
        Record::new("t", Data::NULL)
            .with_key(Data::schemaless(map(vec![("other", Value::Int64(1))]))),
    );
    assert!(out.key.value().is_null(), "a missing map key extracts null");
    let bad = structure(vec![("other", int32(), Value::Int32(1))]);
    assert_eq!(
        failed(&mut h, Record::new("t", Data::NULL).with_key(bad)),
        "Unknown field: id"
    );

    let inner = Schema::structure().field("city", string());
    let nested = Arc::new(Schema::structure().field("address", inner.clone()));
    let address = Struct::from_values(Arc::new(inner), vec![Value::from("Oslo")]).expect("arity");
    let value = Data::new(
        nested.clone(),
        Value::Struct(Struct::from_values(nested, vec![Value::Struct(address)]).expect("arity")),
    );
    let mut h = harness(
        "ExtractField$Value",
        &[("field", "address.city"), ("field.syntax.version", "V2")],
    );
    assert_eq!(
        kept(&mut h, Record::new("t", value)).value.value(),
        &Value::from("Oslo")
    );
}

#[test]
fn hoist_field_wraps_the_value() {
    // docs: HoistField$Value field=line: "hello" becomes {line: "hello"}.
    let mut h = harness("HoistField$Value", &[("field", "line")]);
    let out = kept(
        &mut h,
        Record::new("t", Data::new(Arc::new(string()), "hello")),
    );
    assert_eq!(names(&out.value), ["line"]);
    assert_eq!(field(&out.value, "line"), Some(&Value::from("hello")));
    let out = kept(&mut h, Record::new("t", Data::schemaless(Value::Int64(3))));
    assert_eq!(out.value.value(), &map(vec![("line", Value::Int64(3))]));
    // A null in a required field is Kafka's error, not a broken struct.
    let out = failed(
        &mut h,
        Record::new("t", Data::new(Arc::new(string()), Value::Null)),
    );
    assert!(out.contains("null used for required field"), "{out}");
}

#[test]
fn cast_follows_javas_rules() {
    let mut h = harness(
        "Cast$Value",
        &[("spec", "id:string,score:float64,flag:boolean,small:int8")],
    );
    let value = structure(vec![
        ("id", Schema::new(SchemaType::Int64), Value::Int64(7)),
        ("score", int32(), Value::Int32(3)),
        ("flag", string(), Value::from("TRUE")),
        ("small", int32(), Value::Int32(300)),
    ]);
    let out = kept(&mut h, Record::new("t", value));
    assert_eq!(field(&out.value, "id"), Some(&Value::from("7")));
    assert_eq!(field(&out.value, "score"), Some(&Value::Float64(3.0)));
    assert_eq!(field(&out.value, "flag"), Some(&Value::Boolean(true)));
    assert_eq!(
        field(&out.value, "small"),
        Some(&Value::Int8(44)),
        "(byte) 300 wraps to 44"
    );

    let mut h = harness("Cast$Value", &[("spec", "int32")]);
    let out = kept(
        &mut h,
        Record::new(
            "t",
            Data::new(Arc::new(Schema::new(SchemaType::Float64)), 3.9),
        ),
    );
    assert_eq!(out.value.value(), &Value::Int32(3));
    assert_eq!(
        failed(&mut h, Record::new("t", Data::schemaless("x1"))),
        "For input string: \"x1\""
    );
    let mut h = harness("Cast$Value", &[("spec", "string")]);
    let out = kept(
        &mut h,
        Record::new("t", Data::schemaless(Value::Float64(1e10))),
    );
    assert_eq!(out.value.value(), &Value::from("1.0E10"));
    let out = kept(
        &mut h,
        Record::new("t", Data::schemaless(Value::Bytes(b"hi".to_vec()))),
    );
    assert_eq!(
        out.value.value(),
        &Value::from("aGk="),
        "bytes become base64"
    );
    assert!(
        failed(&mut h, Record::new("t", Data::schemaless(map(vec![]))))
            .contains("does not support casting from MAP")
    );
    assert!(config_error("Cast$Value", &[("spec", "a:decimal")]).contains("spec"));
}

#[test]
fn timestamp_converter_converts_between_forms() {
    // docs: TimestampConverter$Value field=event_date target.type=string format=yyyy-MM-dd.
    let mut h = harness(
        "TimestampConverter$Value",
        &[
            ("field", "event_date"),
            ("target.type", "string"),
            ("format", "yyyy-MM-dd"),
        ],
    );
    let value = structure(vec![(
        "event_date",
        Schema::timestamp(),
        Value::Int64(1_484_124_693_211),
    )]);
    let out = kept(&mut h, Record::new("t", value));
    assert_eq!(
        field(&out.value, "event_date"),
        Some(&Value::from("2017-01-11"))
    );

    let mut h = harness(
        "TimestampConverter$Value",
        &[
            ("target.type", "Timestamp"),
            ("format", "yyyy-MM-dd HH:mm:ss"),
        ],
    );
    let out = kept(
        &mut h,
        Record::new("t", Data::schemaless("2017-01-11 08:51:33")),
    );
    assert_eq!(out.value.value(), &Value::Int64(1_484_124_693_000));
    assert!(
        failed(&mut h, Record::new("t", Data::schemaless("yesterday")))
            .contains("does not match pattern")
    );

    let mut h = harness(
        "TimestampConverter$Value",
        &[("target.type", "unix"), ("unix.precision", "seconds")],
    );
    let out = kept(
        &mut h,
        Record::new(
            "t",
            Data::new(
                Arc::new(Schema::timestamp()),
                Value::Int64(1_484_124_693_211),
            ),
        ),
    );
    assert_eq!(out.value.value(), &Value::Int64(1_484_124_693));
    let mut h = harness("TimestampConverter$Value", &[("target.type", "Date")]);
    let out = kept(
        &mut h,
        Record::new("t", Data::schemaless(Value::Int64(1_484_124_693_211))),
    );
    assert_eq!(out.value.value(), &Value::Int32(17_177));
    assert!(
        config_error("TimestampConverter$Value", &[("target.type", "string")]).contains("format")
    );
}

#[test]
fn routers_rename_the_topic() {
    // docs: RegexRouter regex=(.*)-(.*)-(.*) replacement=$3.
    let mut h = harness(
        "RegexRouter",
        &[("regex", "(.*)-(.*)-(.*)"), ("replacement", "$3")],
    );
    assert_eq!(
        &*kept(&mut h, Record::new("db-shop-orders", Data::NULL)).topic,
        "orders"
    );
    assert_eq!(
        &*kept(&mut h, Record::new("plain", Data::NULL)).topic,
        "plain",
        "no full match, no change"
    );
    // The router remembers the last topic it routed: topics that alternate in a batch each
    // go where the regex sends them.
    let batch = ["a-b-c", "plain", "a-b-c", "x-y-z", "plain"]
        .map(|t| Record::new(t, Data::NULL))
        .to_vec();
    let topics: Vec<String> = h
        .apply(batch)
        .into_iter()
        .map(|o| match o {
            Outcome::Keep(r) => r.topic.to_string(),
            other => panic!("kept, not {other:?}"),
        })
        .collect();
    assert_eq!(topics, ["c", "plain", "c", "z", "plain"]);
    let mut h = harness("RegexRouter", &[("regex", "ord"), ("replacement", "x")]);
    assert_eq!(
        &*kept(&mut h, Record::new("orders", Data::NULL)).topic,
        "orders",
        "a partial match is no match"
    );

    let mut h = harness("TimestampRouter", &[]);
    assert_eq!(
        &*kept(&mut h, sink_record(Data::NULL)).topic,
        "orders-20170111"
    );
    let mut untimed = sink_record(Data::NULL);
    untimed.timestamp = None;
    assert!(failed(&mut h, untimed).starts_with("Timestamp missing on record"));
    assert!(
        config_error("RegexRouter", &[("regex", "("), ("replacement", "x")])
            .contains("regex: Invalid value (")
    );
}

#[test]
fn flatten_joins_nested_names() {
    // Confluent's docs: {content: {id: 42, name: {first, middle, last}}}.
    let name = Schema::structure()
        .field("first", string())
        .field("middle", string().optional())
        .field("last", string());
    let content = Schema::structure()
        .field("id", int32())
        .field("name", name.clone());
    let outer = Arc::new(Schema::structure().field("content", content.clone()));
    let name_v = Struct::from_values(
        Arc::new(name),
        vec![Value::from("David"), Value::Null, Value::from("Wong")],
    )
    .expect("arity");
    let content_v = Struct::from_values(
        Arc::new(content),
        vec![Value::Int32(42), Value::Struct(name_v)],
    )
    .expect("arity");
    let value = Data::new(
        outer.clone(),
        Value::Struct(Struct::from_values(outer, vec![Value::Struct(content_v)]).expect("arity")),
    );
    let mut h = harness("Flatten$Value", &[]);
    let out = kept(&mut h, Record::new("t", value));
    assert_eq!(
        names(&out.value),
        [
            "content.id",
            "content.name.first",
            "content.name.middle",
            "content.name.last"
        ]
    );
    assert_eq!(
        field(&out.value, "content.name.last"),
        Some(&Value::from("Wong"))
    );

    let mut h = harness("Flatten$Value", &[("delimiter", "_")]);
    let nested = map(vec![
        ("a", map(vec![("b", Value::Int64(1))])),
        ("c", Value::Array(vec![])),
    ]);
    let out = kept(&mut h, Record::new("t", Data::schemaless(nested)));
    assert_eq!(
        out.value.value(),
        &map(vec![("a_b", Value::Int64(1)), ("c", Value::Array(vec![]))])
    );
    assert!(kept(&mut h, Record::new("t", Data::NULL)).value.is_null());
}

#[test]
fn header_transforms_move_insert_and_drop_headers() {
    let mut h = harness(
        "HeaderFrom$Value",
        &[
            ("fields", "id"),
            ("headers", "the_id"),
            ("operation", "move"),
        ],
    );
    let value = structure(vec![
        ("id", int32(), Value::Int32(9)),
        ("name", string(), Value::from("n")),
    ]);
    let out = kept(&mut h, Record::new("t", value));
    assert_eq!(names(&out.value), ["name"]);
    assert_eq!(out.headers[0].key, "the_id");
    assert_eq!(out.headers[0].value.value(), &Value::Int32(9));

    let mut h = harness(
        "InsertHeader",
        &[("header", "app.id"), ("value.literal", "best-app")],
    );
    let out = kept(&mut h, Record::new("t", Data::NULL));
    assert_eq!(out.headers[0].value.value(), &Value::from("best-app"));

    let mut h = harness("DropHeaders", &[("headers", "a,b")]);
    let record = Record::new("t", Data::NULL)
        .with_header("a", Data::schemaless("1"))
        .with_header("keep", Data::schemaless("2"))
        .with_header("b", Data::schemaless("3"));
    let out = kept(&mut h, record);
    assert_eq!(
        out.headers
            .iter()
            .map(|h| h.key.as_str())
            .collect::<Vec<_>>(),
        ["keep"]
    );
    assert!(
        config_error(
            "HeaderFrom$Value",
            &[("fields", "a,b"), ("headers", "x"), ("operation", "copy")]
        )
        .contains("same number")
    );

    let mut h = harness("Filter", &[]);
    assert_eq!(one(&mut h, Record::new("t", Data::NULL)), Outcome::Drop);
}

#[test]
fn set_schema_metadata_renames_the_schema() {
    let mut h = harness(
        "SetSchemaMetadata$Value",
        &[("schema.name", "order-value"), ("schema.version", "2")],
    );
    let out = kept(
        &mut h,
        Record::new("t", structure(vec![("id", int32(), Value::Int32(1))])),
    );
    let schema = out.value.schema.as_ref().expect("schema");
    assert_eq!(
        (schema.name.as_deref(), schema.version),
        (Some("order-value"), Some(2))
    );
    assert_eq!(
        out.value
            .value()
            .as_struct()
            .map(|s| s.schema().name.clone()),
        Some(Some("order-value".into()))
    );
    assert_eq!(
        failed(&mut h, Record::new("t", Data::schemaless(map(vec![])))),
        "Schema required for [updating schema metadata]"
    );
}

/// Records as a plugin receives them: read from a batch frame, values still encoded.
fn through_frame(records: Vec<Record>) -> Vec<Record> {
    use wasmconnect_sdk::data::batch::{decode_records, encode_records};
    use wasmconnect_sdk::data::codec::SchemaCache;
    decode_records(encode_records(&records), &mut SchemaCache::new()).expect("a valid frame")
}

#[test]
fn encoded_values_are_edited_in_place_with_the_same_result() {
    let value = || {
        structure(vec![
            ("id", Schema::new(SchemaType::Int64), Value::Int64(7)),
            ("name", string(), Value::from("ada")),
            ("payload", string().optional(), Value::Null),
        ])
    };
    for (class, pairs) in [
        (
            "InsertField$Value",
            vec![
                ("static.field", "origin"),
                ("static.value", "x"),
                ("topic.field", "topic!"),
                ("timestamp.field", "ts"),
            ],
        ),
        (
            "ReplaceField$Value",
            vec![("exclude", "payload"), ("renames", "name:title")],
        ),
        ("ReplaceField$Value", vec![("include", "payload,id")]),
    ] {
        let mut h = harness(class, &pairs);
        let decoded = kept(&mut h, sink_record(value()));
        let framed = through_frame(vec![sink_record(value())])
            .pop()
            .expect("one record");
        assert!(
            framed.value.encoded().is_some(),
            "the value is still encoded"
        );
        let edited = kept(&mut h, framed);
        assert!(
            edited.value.encoded().is_some(),
            "{class}: edited without decoding"
        );
        assert_eq!(
            edited.value, decoded.value,
            "{class}: same schema and value both ways"
        );
    }
    // A required field inserted as null fails the same way.
    let mut h = harness("InsertField$Value", &[("partition.field", "p!")]);
    let mut framed = through_frame(vec![sink_record(value())])
        .pop()
        .expect("one record");
    framed.partition = None;
    assert!(failed(&mut h, framed).contains("null used for required field: \"p\""));
}
