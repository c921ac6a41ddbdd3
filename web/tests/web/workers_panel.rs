//! The workers panel for the autoscaling lesson (issue #14, items 2 and 5): the local
//! autoscaler's state (`mailworker:autoscaler`, as `ops/run --autoscale` publishes it),
//! CPU in millicores and % of the request next to % of one core, stale processes.

use crate::support::{TestApp, text};
use mail_protocol::autoscaler::{AutoscalerState, Metric, WorkerUsage};
use redis::AsyncCommands;
use sidekiq_wire::process::{ProcessInfo, QueueMode};

/// A heartbeat as the worker writes it, `age` seconds old, using `cpu` % of one core.
async fn heartbeat(app: &TestApp, host: &str, pid: u32, age: f64, cpu: &str) -> String {
    let identity = format!("{host}:{pid}:0123456789ab");
    let now = sidekiq_wire::Timestamp::now().as_secs();
    let info = ProcessInfo::new(&identity, host, pid, "0.1.0", now - 100.0).with_queues(
        25,
        &[("default".to_string(), 1)],
        QueueMode::Weighted,
    );
    let mut c = app.redis().conn().await;
    let _: () = c.sadd("processes", &identity).await.unwrap();
    let _: () = c
        .hset_multiple(
            &identity,
            &[
                ("info", serde_json::to_string(&info).unwrap()),
                ("busy", "3".into()),
                ("beat", (now - age).to_string()),
                ("rss", "10240".into()),
                ("cpu", cpu.into()),
                ("quiet", "false".into()),
            ],
        )
        .await
        .unwrap();
    identity
}

fn usage(name: &str, pid: u32, identity: Option<String>, phase: &str) -> WorkerUsage {
    WorkerUsage {
        name: name.into(),
        pid,
        identity,
        cpu_millicores: Some(245.0),
        cpu_percent_of_request: Some(245.0),
        phase: phase.into(),
    }
}

async fn panel(app: &TestApp) -> String {
    text(
        app.get_with("/progress", &[("accept-language", "en")])
            .await,
    )
    .await
}

#[tokio::test]
async fn the_autoscaler_block_shows_replicas_metric_and_cpu_units() {
    let app = TestApp::with_redis().await;
    let id1 = heartbeat(&app, "worker-1", 101, 1.0, "24.5").await;
    heartbeat(&app, "worker-2", 102, 2.0, "12.0").await;
    // Without an autoscaler: no block, no "% of request" column, % of a core and millicores.
    let html = panel(&app).await;
    assert!(!html.contains("id=\"autoscaler\""), "{html}");
    assert!(!html.contains("of request</th>"));
    assert!(
        html.contains(">24.5%<") && html.contains(">245m<"),
        "{html}"
    );
    assert!(html.contains("kubectl get hpa"), "the units are explained");

    let state = AutoscalerState {
        updated_at: sidekiq_wire::Timestamp::now().as_secs() - 2.0,
        metric: Metric::Cpu,
        metric_value: Some(183.5),
        metric_target: 70.0,
        current_replicas: 2,
        proposed_replicas: 6,
        desired_replicas: 4,
        min_replicas: 1,
        max_replicas: 10,
        reason: "ScaleUpLimit".into(),
        cpu_request_millicores: 100.0,
        time_compression: 4.0,
        sync_period_secs: 3.75,
        workers: vec![
            usage("worker-1", 101, Some(id1), "running"),
            // Not logged its identity yet: matched by host name and pid.
            usage("worker-2", 102, None, "terminating"),
            // Started, no heartbeat yet.
            usage("worker-3", 103, None, "starting"),
        ],
    };
    let mut c = app.redis().conn().await;
    state.store(&mut c).await.unwrap();
    let html = panel(&app).await;
    assert!(
        html.contains("id=\"autoscaler\" data-desired=\"4\""),
        "{html}"
    );
    assert!(html.contains("id=\"replicas-current\">2<"));
    assert!(html.contains("id=\"replicas-desired\">4<"));
    assert!(html.contains("the metric alone: 6") && html.contains("ScaleUpLimit"));
    assert!(
        html.contains(">184%</span> / target 70% (of the 100m CPU request)"),
        "{html}"
    );
    assert!(html.contains("time ×4"));
    // Each worker: % of one core, millicores, % of the 100m request.
    assert!(html.contains(">24.5%<") && html.contains(">245m<") && html.contains(">245%<"));
    assert!(html.contains(">12.0%<") && html.contains(">120m<") && html.contains(">120%<"));
    assert!(html.contains(">terminating<"));
    assert!(html.contains("worker-3 (pid 103): starting"));
    assert!(
        !html.contains("worker-1 (pid 101)"),
        "listed workers are not repeated"
    );
    // The Japanese panel says the same.
    let ja = text(app.get("/progress").await).await;
    assert!(
        ja.contains("オートスケーラー") && ja.contains("リクエスト比"),
        "{ja}"
    );

    // The autoscaler stops (its key expires): the block goes.
    let _: () = c.del(mail_protocol::autoscaler::KEY).await.unwrap();
    assert!(!panel(&app).await.contains("id=\"autoscaler\""));
}

#[tokio::test]
async fn processes_without_a_recent_heartbeat_are_marked_stale() {
    let app = TestApp::with_redis().await;
    heartbeat(&app, "pod-fresh", 1, 3.0, "1.0").await;
    heartbeat(&app, "pod-stuck", 2, 40.0, "1.0").await;
    let html = panel(&app).await;
    let row = |host: &str| -> String {
        let at = html.find(&format!("{host}:")).unwrap();
        let start = html[..at].rfind("<tr").unwrap();
        let end = at + html[at..].find("</tr>").unwrap();
        html[start..end].to_string()
    };
    let stuck = row("pod-stuck");
    assert!(stuck.starts_with("<tr class=\"stale\""), "{stuck}");
    assert!(stuck.contains("40s ago") && stuck.contains("no heartbeat"));
    let fresh = row("pod-fresh");
    assert!(
        !fresh.contains("stale") && !fresh.contains("no heartbeat"),
        "{fresh}"
    );
}
