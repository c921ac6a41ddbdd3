//! The wire format against the real Ruby Sidekiq 6.4, 7.3 and 8.1, both directions: every
//! test runs once per version (`<test>::sidekiq_6_4`, `::sidekiq_7_3`, `::sidekiq_8_1`).

use mail_protocol::MailSenderArgs;
use serde_json::{Value, json};
use sidekiq_wire::{Client, Job, Retry, Timestamp, keys};
use test_services::{RedisServer, SidekiqVersion, SidekiqWeb, on_every_sidekiq, ruby};

on_every_sidekiq!(
    installed_sidekiq_is_the_expected_release,
    ruby_client_push_parses_in_rust_with_every_field,
    ruby_push_bulk_and_perform_in_parse_in_rust,
    rust_pushed_jobs_read_correctly_in_ruby,
    rust_pushed_job_shows_on_the_real_sidekiq_web_queue_page,
    sidekiq_7_and_8_payload_shapes_round_trip_unchanged,
);

fn now() -> f64 {
    Timestamp::now().as_secs()
}

fn assert_recent(v: &Value, what: &str) {
    assert!(v.is_f64(), "{what} must be float seconds, got {v}");
    let t = v.as_f64().unwrap();
    assert!(
        (now() - t).abs() < 30.0,
        "{what} = {t} is not within 30 s of now"
    );
}

async fn queue_members(redis: &RedisServer, queue: &str) -> Vec<String> {
    let mut c = redis.conn().await;
    let mut v: Vec<String> = redis::cmd("LRANGE")
        .arg(keys::queue(queue))
        .arg(0)
        .arg(-1)
        .query_async(&mut c)
        .await
        .unwrap();
    v.reverse(); // oldest first
    v
}

async fn installed_sidekiq_is_the_expected_release(v: SidekiqVersion) {
    let redis = RedisServer::start();
    let installed = ruby::version_on(v, &redis.url()).await;
    assert!(
        installed.starts_with(v.line()),
        "{v}: the runtime loads Sidekiq {installed}"
    );
    if v == SidekiqVersion::V6 {
        assert_eq!(installed, "6.4.1", "Debian bookworm's ruby-sidekiq");
    }
}

/// 8.x writes `created_at`/`enqueued_at` as integer milliseconds, 6.4/7.x as float seconds.
fn assert_native_timestamp(v: SidekiqVersion, job: &Value, field: &str) {
    let t = &job[field];
    if v == SidekiqVersion::V8 {
        assert!(t.is_u64(), "{v} writes {field} as int ms, got {t}");
    } else {
        assert!(t.is_f64(), "{v} writes {field} as float seconds, got {t}");
    }
}

async fn ruby_client_push_parses_in_rust_with_every_field(v: SidekiqVersion) {
    let redis = RedisServer::start();
    let out = ruby::json_on(
        v,
        &redis.url(),
        r#"
        jid = Sidekiq::Client.push("class" => "MailSenderJob", "queue" => "default",
          "args" => [{"to" => "a@example.test", "name" => "Ann", "email_id" => 1, "mail_job_id" => 2, "simulate_error" => false}],
          "retry" => 3, "backtrace" => 5, "tags" => ["bulk"], "custom" => {"k" => [1, 2.5, nil]})
        puts JSON.generate({"jid" => jid})
        "#,
    )
    .await;
    let raw = queue_members(&redis, "default").await;
    assert_eq!(raw.len(), 1);
    let as_json: Value = serde_json::from_str(&raw[0]).unwrap();
    assert_native_timestamp(v, &as_json, "created_at");
    assert_native_timestamp(v, &as_json, "enqueued_at");
    let job = Job::parse(&raw[0]).unwrap();
    assert_eq!(job.jid(), out["jid"]);
    assert_eq!(job.class(), "MailSenderJob");
    assert_eq!(job.queue(), Some("default"));
    assert_eq!(job.retry(), Retry::Max(3));
    assert_eq!(job.get("backtrace"), Some(&json!(5)));
    assert_eq!(job.get("tags"), Some(&json!(["bulk"])));
    assert_eq!(job.get("custom"), Some(&json!({"k": [1, 2.5, null]})));
    let args = MailSenderArgs::from_job(&job).unwrap();
    assert_eq!(args.to, "a@example.test");
    assert_eq!(args.name.as_deref(), Some("Ann"));
    assert_eq!(
        (args.email_id, args.mail_job_id, args.simulate_error),
        (Some(1), Some(2), false)
    );
    assert!((now() - job.created_at().unwrap().as_secs()).abs() < 30.0);
    assert!((now() - job.enqueued_at().unwrap().as_secs()).abs() < 30.0);
    assert_eq!(
        job.to_json_string(),
        raw[0],
        "re-serialized payload must equal Ruby's bytes"
    );
}

async fn ruby_push_bulk_and_perform_in_parse_in_rust(v: SidekiqVersion) {
    let redis = RedisServer::start();
    let out = ruby::json_on(
        v,
        &redis.url(),
        r#"
        class MailSenderJob
          include Sidekiq::Job
          sidekiq_options queue: "default", retry: 3
        end
        jids = Sidekiq::Client.push_bulk("class" => MailSenderJob,
          "args" => (1..1500).map { |i| [{"to" => "u#{i}@example.test", "email_id" => i}] })
        later = MailSenderJob.perform_in(600, {"to" => "later@example.test"})
        puts JSON.generate({"jids" => jids, "later" => later})
        "#,
    )
    .await;
    let raw = queue_members(&redis, "default").await;
    assert_eq!(raw.len(), 1500);
    let jids: Vec<&str> = out["jids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for (i, (payload, jid)) in raw.iter().zip(&jids).enumerate() {
        let job = Job::parse(payload).unwrap();
        assert_eq!(job.jid(), *jid, "FIFO order is kept");
        assert_eq!(job.retry(), Retry::Max(3));
        let args = MailSenderArgs::from_job(&job).unwrap();
        assert_eq!(args.to, format!("u{}@example.test", i + 1));
        assert_eq!(&job.to_json_string(), payload);
    }
    let scheduled = redis.zrange_withscores(keys::SCHEDULE).await;
    assert_eq!(scheduled.len(), 1);
    let (payload, score) = &scheduled[0];
    let job = Job::parse(payload).unwrap();
    assert_eq!(job.jid(), out["later"]);
    assert!(job.get("at").is_none(), "Ruby strips `at`");
    assert!((score - (now() + 600.0)).abs() < 30.0);
    assert_eq!(
        MailSenderArgs::from_job(&job).unwrap().to,
        "later@example.test"
    );
}

async fn rust_pushed_jobs_read_correctly_in_ruby(v: SidekiqVersion) {
    let redis = RedisServer::start();
    let client = Client::connect(&redis.url()).await.unwrap();
    let jobs: Vec<Job> = (0..3)
        .map(|i| {
            MailSenderArgs {
                to: format!("r{i}@example.test"),
                name: Some(format!("<b>名前{i}</b>")),
                email_id: Some(i),
                mail_job_id: Some(7),
                instance: None,
                simulate_error: false,
            }
            .into_job("default")
        })
        .collect();
    let jids = client.push_bulk(jobs).await.unwrap();
    let high = Job::new("OtherJob", vec![json!(1), json!("two")])
        .with_queue("high")
        .with_retry(Retry::Disabled);
    let high_jid = client.push(high).await.unwrap();
    let later = Job::new("MailSenderJob", vec![json!({"to": "s@example.test"})]);
    let later_jid = client
        .schedule(later, Timestamp::now().plus_secs(300.0))
        .await
        .unwrap();

    let seen = ruby::json_on(
        v,
        &redis.url(),
        r#"
        q = Sidekiq::Queue.new("default").map { |j|
          {"jid" => j.jid, "klass" => j.klass, "args" => j.args, "queue" => j.queue,
           "enqueued_at" => j.enqueued_at.to_f, "created_at" => j.created_at.to_f,
           "retry" => j["retry"]} }
        h = Sidekiq::Queue.new("high").map { |j| {"jid" => j.jid, "args" => j.args, "retry" => j["retry"]} }
        s = Sidekiq::ScheduledSet.new.map { |j|
          {"jid" => j.jid, "at" => j.at.to_f, "created_at" => j.created_at.to_f, "enqueued_at" => j["enqueued_at"]} }
        puts JSON.generate({"default" => q, "latency" => Sidekiq::Queue.new("default").latency,
          "high" => h, "scheduled" => s, "queues" => Sidekiq::Queue.all.map(&:name).sort})
        "#,
    )
    .await;
    assert_eq!(seen["queues"], json!(["default", "high"]));
    let default = seen["default"].as_array().unwrap();
    assert_eq!(default.len(), 3);
    // Sidekiq::Queue iterates newest first.
    for (entry, (i, jid)) in default.iter().rev().zip(jids.iter().enumerate()) {
        assert_eq!(entry["jid"], json!(jid));
        assert_eq!(entry["klass"], "MailSenderJob");
        assert_eq!(entry["queue"], "default");
        assert_eq!(entry["retry"], 3);
        assert_eq!(entry["args"][0]["to"], format!("r{i}@example.test"));
        assert_eq!(entry["args"][0]["name"], format!("<b>名前{i}</b>"));
        assert_recent(&entry["enqueued_at"], "enqueued_at");
        assert_recent(&entry["created_at"], "created_at");
    }
    let latency = seen["latency"].as_f64().unwrap();
    assert!((0.0..30.0).contains(&latency), "Queue#latency {latency}");
    assert_eq!(seen["high"][0]["jid"], json!(high_jid));
    assert_eq!(seen["high"][0]["args"], json!([1, "two"]));
    assert_eq!(seen["high"][0]["retry"], false);
    let s = &seen["scheduled"][0];
    assert_eq!(s["jid"], json!(later_jid));
    assert!((s["at"].as_f64().unwrap() - (now() + 300.0)).abs() < 30.0);
    assert_recent(&s["created_at"], "created_at");
    assert_eq!(
        s["enqueued_at"],
        Value::Null,
        "scheduled members carry no enqueued_at"
    );
}

async fn rust_pushed_job_shows_on_the_real_sidekiq_web_queue_page(v: SidekiqVersion) {
    let redis = RedisServer::start();
    let client = Client::connect(&redis.url()).await.unwrap();
    let job = MailSenderArgs {
        to: "web@example.test".into(),
        name: None,
        email_id: None,
        mail_job_id: None,
        instance: None,
        simulate_error: false,
    }
    .into_job("default");
    let jid = client.push(job).await.unwrap();
    let web = SidekiqWeb::start_version(v, &redis.url()).await;
    let (status, body) = web.get("/queues/default").await;
    assert_eq!(status, 200);
    assert!(body.contains("MailSenderJob"), "class on the queue page");
    assert!(body.contains("web@example.test"), "args on the queue page");
    assert!(
        body.contains(&jid),
        "the entry (with its jid) is on the queue page"
    );
    let (status, _) = web.get("/").await;
    assert_eq!(
        status, 200,
        "dashboard computes default-queue latency from our enqueued_at"
    );
    let (status, stats) = web.get("/stats").await;
    assert_eq!(status, 200);
    let stats: Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["sidekiq"]["enqueued"], 1);
    let latency = stats["sidekiq"]["default_latency"].as_f64().unwrap();
    assert!((0.0..30.0).contains(&latency), "default_latency {latency}");
}

/// Payloads as Sidekiq 7.3 and 8.1 write them (sidekiq-wire.md §1.1–1.4): Rust must
/// re-serialize them unchanged, and every version's Ruby must read ours as equal to the original.
async fn sidekiq_7_and_8_payload_shapes_round_trip_unchanged(v: SidekiqVersion) {
    let fixtures = [
        // 7.3: float seconds everywhere, strict-base64 backtrace, retry_for.
        r#"{"retry":2,"queue":"mailers","backtrace":3,"class":"Billing::Invoice","args":[42,"eur"],"jid":"5f0c6e1a2b3c4d5e6f708192","created_at":1732400000.123456,"enqueued_at":1732400030.5,"retry_for":3600,"failed_at":1732400031.25,"retry_count":0,"error_message":"boom","error_class":"RuntimeError","error_backtrace":"eJyLVkrUS8pMVIrVUUhKLKpUitVRKMrPS1WwUihJLS4BAHd2CFw="}"#,
        // 8.1: int milliseconds, tags, a Pro batch id, cattr, an ActiveJob wrapper.
        r#"{"retry":true,"queue":"default","wrapped":"SendNewsletter","class":"Sidekiq::ActiveJob::Wrapper","args":[{"job_class":"SendNewsletter","job_id":"c0ffee","arguments":[1]}],"jid":"0123456789abcdef01234567","created_at":1795493142500,"enqueued_at":1795493172500,"tags":["news"],"bid":"Xy12","cattr":{"tenant":"acme"}}"#,
        // 8.x retried a 7.x job: float created_at, int-ms failed_at/retried_at, retry_count -1 after "Retry now".
        r#"{"class":"MailSenderJob","args":[{"to":"x@example.test"}],"retry":3,"queue":"default","jid":"aaaaaaaaaaaaaaaaaaaaaaaa","created_at":1732400000.5,"failed_at":1795493142500,"retried_at":1795493200000,"retry_count":-1,"error_message":"451 try later","error_class":"SmtpTransient","enqueued_at":1795493300000}"#,
    ];
    let redis = RedisServer::start();
    for raw in fixtures {
        let job = Job::parse(raw).unwrap();
        let ours = job.to_json_string();
        assert_eq!(ours, raw);
        let eq = ruby::run_on(
            v,
            &redis.url(),
            &format!(
                "print JSON.parse({}) == JSON.parse({})",
                serde_json::to_string(raw).unwrap().replace('#', "\\#"),
                serde_json::to_string(&ours).unwrap().replace('#', "\\#")
            ),
        )
        .await;
        assert_eq!(eq, "true");
    }
}
