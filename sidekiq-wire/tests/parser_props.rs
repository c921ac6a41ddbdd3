//! Property tests of the payload parser: arbitrary input never panics, malformed payloads
//! are errors, and every valid payload survives a parse/serialize round trip unchanged.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "tests"
)]

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use sidekiq_wire::{Job, Timestamp, backtrace};

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
        ".{0,20}".prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A payload Ruby could have written: required keys plus arbitrary extras.
fn valid_payload() -> impl Strategy<Value = Value> {
    (
        "[A-Z][A-Za-z:]{0,20}",
        prop::collection::vec(json_value(), 0..4),
        "[0-9a-f]{24}",
        prop_oneof![
            Just(json!(true)),
            Just(json!(false)),
            (0i64..30).prop_map(Value::from)
        ],
        prop::option::of(-1i64..30),
        prop::option::of(prop_oneof![
            (1.5e9f64..2e9).prop_map(Value::from),
            (1_500_000_000_000i64..2_000_000_000_000).prop_map(Value::from),
        ]),
        prop::collection::btree_map("x_[a-z]{1,6}", json_value(), 0..4),
    )
        .prop_map(|(class, args, jid, retry, count, at, extras)| {
            let mut m = Map::new();
            m.insert("class".into(), Value::String(class));
            m.insert("args".into(), Value::Array(args));
            m.insert("jid".into(), Value::String(jid));
            m.insert("queue".into(), json!("default"));
            m.insert("retry".into(), retry);
            if let Some(c) = count {
                m.insert("retry_count".into(), json!(c));
            }
            if let Some(t) = at {
                m.insert("enqueued_at".into(), t);
            }
            for (k, v) in extras {
                m.insert(k, v);
            }
            Value::Object(m)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = Job::parse(&text);
        let _ = backtrace::decode(&text);
    }

    #[test]
    fn arbitrary_json_never_panics(v in json_value()) {
        if let Ok(job) = Job::from_value(v) {
            // Every accessor is total on a validated job.
            let _ = (job.class(), job.args(), job.jid(), job.queue(), job.retry(), job.retry_count());
            let _ = (job.created_at(), job.enqueued_at(), job.failed_at(), job.retried_at(), job.backtrace_option());
        }
    }

    #[test]
    fn valid_payloads_round_trip_byte_for_byte(v in valid_payload()) {
        let raw = serde_json::to_string(&v).unwrap();
        let job = Job::parse(&raw).unwrap();
        prop_assert_eq!(job.to_json_string(), raw);
    }

    #[test]
    fn removing_a_required_key_is_an_error(v in valid_payload(), which in 0usize..3) {
        let mut v = v;
        let key = ["class", "args", "jid"][which];
        v.as_object_mut().unwrap().remove(key);
        prop_assert!(Job::from_value(v).is_err());
    }

    #[test]
    fn wrong_types_for_required_keys_are_errors(v in valid_payload(), which in 0usize..3, bad in json_leaf()) {
        let key = ["class", "args", "jid"][which];
        let fits = match key { "args" => bad.is_array(), _ => bad.is_string() };
        prop_assume!(!fits);
        let mut v = v;
        v.as_object_mut().unwrap().insert(key.into(), bad);
        prop_assert!(Job::from_value(v).is_err());
    }

    #[test]
    fn timestamps_float_is_seconds_integer_is_millis(secs in 1.5e9f64..2e9) {
        let ms = (secs * 1000.0).round() as i64;
        let from_ms = Timestamp::from_json(&json!(ms)).unwrap().unwrap().as_secs();
        let from_s = Timestamp::from_json(&json!(secs)).unwrap().unwrap().as_secs();
        prop_assert!((from_ms - from_s).abs() < 0.001);
    }

    #[test]
    fn backtraces_round_trip(lines in prop::collection::vec(".{0,40}", 0..20)) {
        prop_assert_eq!(backtrace::decode(&backtrace::encode(&lines)).unwrap(), lines);
    }
}
