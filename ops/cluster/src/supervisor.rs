//! A process supervisor that behaves like a small Kubernetes node: each service is a
//! Deployment of one or more replicas, restarted when it exits, stopped in tiers.
//!
//! - Every child runs in **its own process group**, so a Ctrl-C in the terminal (SIGINT to
//!   the foreground group) reaches only the supervisor, which then stops the children in
//!   order. They also get `PR_SET_PDEATHSIG`, so a supervisor killed with SIGKILL still
//!   takes them down (with SIGTERM) instead of leaving them orphaned.
//! - A replica that exits on its own (a crash, or Stop on the Sidekiq Busy page) is started
//!   again under the same name, like a container restarted in its pod; a worker gets a new
//!   Sidekiq identity because its pid changes. Replicas that keep failing within seconds
//!   back off (1 s, 2 s, … 30 s), as CrashLoopBackOff does.
//! - [`Control::Scale`] changes a scalable service's replica count: new replicas are started
//!   in the lowest free slots, surplus ones (the youngest first, as a ReplicaSet picks) get
//!   SIGTERM and are not restarted.
//! - Stopping goes tier by tier ([`ServiceSpec::stop_tier`]): SIGTERM to the group, wait up
//!   to the service's grace period, then SIGKILL, as the kubelet does.
//! - Output of every child goes through the supervisor into `<logs>/<replica>.log`
//!   ([`crate::logs`]); lines logged at level ERROR are repeated on the terminal.

use crate::logs::{LogLine, LogSink};
use std::collections::HashMap;
use std::ffi::OsString;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Where a service listens.
#[derive(Debug, Clone)]
pub enum Port {
    /// One port chosen before start (single-replica services others connect to).
    Fixed(u16),
    /// A free port from `from` upwards, chosen at every start and passed in `env`.
    PerReplica {
        /// The variable that tells the process its port (e.g. `METRICS_PORT`).
        env: &'static str,
        /// The first port tried.
        from: u16,
    },
}

/// One entry of the cluster: how a service is started, checked and stopped.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// `redis`, `web`, `worker`, … (replicas of a scalable service are `worker-1`, …).
    pub name: String,
    /// Program and arguments.
    pub command: Vec<OsString>,
    /// Variables set on top of the supervisor's own environment.
    pub env: Vec<(String, OsString)>,
    /// The port that says "ready" once it accepts connections.
    pub port: Option<Port>,
    /// Replicas at start.
    pub replicas: u32,
    /// Replicas get numbered names and `HOSTNAME`, and [`Control::Scale`] applies.
    pub scalable: bool,
    /// Lower tiers stop first (web and workers 0, admin 1, mail catcher and Redis 2).
    pub stop_tier: u8,
    /// SIGTERM to SIGKILL (the pod's `terminationGracePeriodSeconds`).
    pub stop_grace: Duration,
    /// How long a start may take before the port must answer.
    pub start_timeout: Duration,
}

/// Requests to a running supervisor.
#[derive(Debug)]
pub enum Control {
    /// Set a scalable service's replica count.
    Scale {
        /// The service name.
        service: String,
        /// The new count.
        replicas: u32,
    },
    /// Report the replicas of a service.
    Snapshot {
        /// The service name.
        service: String,
        /// Where to send them.
        reply: oneshot::Sender<Vec<ReplicaInfo>>,
    },
}

/// A replica's lifecycle, as a pod's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Started; its port does not answer yet.
    Starting,
    /// Ready.
    Running,
    /// SIGTERM sent; finishing.
    Terminating,
}

impl Phase {
    /// `starting`, `running`, `terminating`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Running => "running",
            Phase::Terminating => "terminating",
        }
    }
}

/// What [`Control::Snapshot`] reports about one replica.
#[derive(Debug, Clone)]
pub struct ReplicaInfo {
    /// `worker-2`.
    pub name: String,
    /// Its process id (also its process group id).
    pub pid: u32,
    /// Its phase.
    pub phase: Phase,
    /// The Sidekiq identity it logged, for workers.
    pub identity: Option<String>,
    /// Its port, if it has one.
    pub port: Option<u16>,
}

/// Starting the cluster failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The program could not be executed.
    #[error("{name}: cannot start {program}: {source}")]
    Spawn {
        /// Replica name.
        name: String,
        /// Program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// It exited or never opened its port.
    #[error("{name} did not become ready ({why}); last lines of {log}:\n{tail}")]
    NotReady {
        /// Replica name.
        name: String,
        /// What happened.
        why: String,
        /// Its log file.
        log: String,
        /// The end of that log.
        tail: String,
    },
}

/// How one replica ended when the cluster stopped.
#[derive(Debug, Clone)]
pub struct Stopped {
    /// Replica name.
    pub name: String,
    /// Its tier.
    pub tier: u8,
    /// Its exit status (`None` if it had to be killed and its status was lost).
    pub status: Option<ExitStatus>,
    /// Whether SIGKILL was needed.
    pub killed: bool,
}

enum Event {
    Exited { id: u64, status: Option<ExitStatus> },
    Log { id: u64, line: LogLine },
    RestartDue { spec: usize, slot: u32 },
}

struct Replica {
    id: u64,
    spec: usize,
    slot: u32,
    name: String,
    pid: u32,
    started: Instant,
    port: Option<u16>,
    phase: Phase,
    identity: Option<String>,
    previous_identity: Option<String>,
    /// SIGTERM was sent on purpose (scale-down or stop): do not restart.
    retiring: bool,
}

/// The running cluster.
pub struct Supervisor {
    specs: Vec<ServiceSpec>,
    desired: Vec<u32>,
    replicas: Vec<Replica>,
    logs: LogSink,
    events_tx: mpsc::UnboundedSender<Event>,
    events: mpsc::UnboundedReceiver<Event>,
    next_id: u64,
    /// Per (spec, slot): how many times in a row the replica died young, and its last identity.
    crash_counts: HashMap<(usize, u32), u32>,
    last_identity: HashMap<(usize, u32), String>,
    /// Slots with a restart pending (their backoff timer runs).
    pending_restarts: HashMap<(usize, u32), ()>,
    stopping: bool,
}

/// A replica that ran at least this long is healthy again: its next restart is immediate.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// The longest wait between restarts of a crash-looping replica.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl Supervisor {
    /// A supervisor for `specs` (in start order), writing logs through `logs`.
    pub fn new(specs: Vec<ServiceSpec>, logs: LogSink) -> Self {
        let (events_tx, events) = mpsc::unbounded_channel();
        let desired = specs.iter().map(|s| s.replicas).collect();
        Supervisor {
            specs,
            desired,
            replicas: Vec::new(),
            logs,
            events_tx,
            events,
            next_id: 0,
            crash_counts: HashMap::new(),
            last_identity: HashMap::new(),
            pending_restarts: HashMap::new(),
            stopping: false,
        }
    }

    /// Starts every service in order, each one ready before the next starts.
    ///
    /// # Errors
    /// A service that cannot be executed or does not become ready (the log tail is in the
    /// error). What was started stays running: call [`Supervisor::stop`].
    pub async fn start(&mut self) -> Result<(), StartError> {
        for spec in 0..self.specs.len() {
            let mut ids = Vec::new();
            for slot in 1..=self.desired[spec] {
                ids.push(self.spawn(spec, slot)?);
            }
            for id in ids {
                self.wait_ready(id).await?;
            }
        }
        Ok(())
    }

    /// The port a single-replica service listens on, or the first replica's.
    pub fn port_of(&self, service: &str) -> Option<u16> {
        self.replicas
            .iter()
            .find(|r| self.specs[r.spec].name == service)
            .and_then(|r| r.port)
    }

    /// Supervises until `shutdown` resolves, serving `control` requests meanwhile, then
    /// stops everything in tier order and reports how each replica ended.
    pub async fn run(
        mut self,
        mut control: mpsc::Receiver<Control>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Vec<Stopped> {
        tokio::pin!(shutdown);
        let mut control_open = true;
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(event) = self.events.recv() => self.handle(event),
                request = control.recv(), if control_open => match request {
                    Some(request) => self.serve(request),
                    None => control_open = false,
                },
            }
        }
        self.stop().await
    }

    fn serve(&mut self, request: Control) {
        match request {
            Control::Scale { service, replicas } => self.scale(&service, replicas),
            Control::Snapshot { service, reply } => {
                let list = self
                    .replicas
                    .iter()
                    .filter(|r| self.specs[r.spec].name == service)
                    .map(|r| ReplicaInfo {
                        name: r.name.clone(),
                        pid: r.pid,
                        phase: r.phase,
                        identity: r.identity.clone(),
                        port: r.port,
                    })
                    .collect();
                let _ = reply.send(list);
            }
        }
    }

    fn scale(&mut self, service: &str, replicas: u32) {
        let Some(spec) = self
            .specs
            .iter()
            .position(|s| s.name == service && s.scalable)
        else {
            tracing::warn!(service, "scale request for a service that does not scale");
            return;
        };
        self.desired[spec] = replicas;
        self.reconcile(spec);
    }

    /// Starts or retires replicas of `spec` until the live ones match the desired count.
    fn reconcile(&mut self, spec: usize) {
        if self.stopping {
            return;
        }
        let live: Vec<&Replica> = self
            .replicas
            .iter()
            .filter(|r| r.spec == spec && !r.retiring)
            .collect();
        let pending = self
            .pending_restarts
            .keys()
            .filter(|(s, _)| *s == spec)
            .count() as u32;
        let have = live.len() as u32 + pending;
        let want = self.desired[spec];
        if have < want {
            let mut used: Vec<u32> = self
                .replicas
                .iter()
                .filter(|r| r.spec == spec)
                .map(|r| r.slot)
                .chain(
                    self.pending_restarts
                        .keys()
                        .filter(|(s, _)| *s == spec)
                        .map(|(_, slot)| *slot),
                )
                .collect();
            for _ in have..want {
                let slot = (1..).find(|n| !used.contains(n)).unwrap_or(1);
                used.push(slot);
                match self.spawn(spec, slot) {
                    Ok(id) => self.watch_ready(id),
                    Err(e) => tracing::error!(error = %e, "scale-up failed"),
                }
            }
        } else if have > want {
            // Pending restarts go first (nothing to stop), then the youngest replicas.
            let mut surplus = have - want;
            let cancelled: Vec<(usize, u32)> = self
                .pending_restarts
                .keys()
                .filter(|(s, _)| *s == spec)
                .copied()
                .take(surplus as usize)
                .collect();
            for key in cancelled {
                self.pending_restarts.remove(&key);
                surplus -= 1;
            }
            let mut victims: Vec<(Instant, u64)> = live.iter().map(|r| (r.started, r.id)).collect();
            victims.sort_by_key(|v| std::cmp::Reverse(v.0));
            for (_, id) in victims.into_iter().take(surplus as usize) {
                if let Some(r) = self.replicas.iter_mut().find(|r| r.id == id) {
                    r.retiring = true;
                    r.phase = Phase::Terminating;
                    tracing::info!(replica = %r.name, pid = r.pid, "scale-down: SIGTERM to {} (pid {}); it finishes its jobs first", r.name, r.pid);
                    signal_group(r.pid, libc::SIGTERM);
                }
            }
        }
    }

    fn spawn(&mut self, spec_index: usize, slot: u32) -> Result<u64, StartError> {
        let spec = &self.specs[spec_index];
        let name = if spec.scalable {
            format!("{}-{slot}", spec.name)
        } else {
            spec.name.clone()
        };
        let mut cmd = tokio::process::Command::new(&spec.command[0]);
        cmd.args(&spec.command[1..])
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if spec.scalable {
            cmd.env("HOSTNAME", &name);
        }
        let port = match &spec.port {
            Some(Port::Fixed(p)) => Some(*p),
            Some(Port::PerReplica { env, from }) => {
                let taken: Vec<u16> = self.replicas.iter().filter_map(|r| r.port).collect();
                let p = crate::ports::first_free_excluding(*from, &taken);
                cmd.env(env, p.to_string());
                Some(p)
            }
            None => None,
        };
        die_with_parent(&mut cmd);
        let mut child = cmd.spawn().map_err(|source| StartError::Spawn {
            name: name.clone(),
            program: spec.command[0].to_string_lossy().into_owned(),
            source,
        })?;
        let pid = child.id().unwrap_or(0);
        let id = self.next_id;
        self.next_id += 1;
        self.logs.start_marker(&name, pid);
        let events = self.events_tx.clone();
        let sink = self.logs.clone();
        if let Some(out) = child.stdout.take() {
            sink.pump(name.clone(), out, forward(events.clone(), id));
        }
        if let Some(err) = child.stderr.take() {
            sink.pump(name.clone(), err, forward(events.clone(), id));
        }
        tokio::spawn(async move {
            let status = child.wait().await.ok();
            let _ = events.send(Event::Exited { id, status });
        });
        tracing::info!(replica = %name, pid, port, "started {name} (pid {pid})");
        let previous_identity = self.last_identity.get(&(spec_index, slot)).cloned();
        self.replicas.push(Replica {
            id,
            spec: spec_index,
            slot,
            name,
            pid,
            started: Instant::now(),
            port,
            phase: Phase::Starting,
            identity: None,
            previous_identity,
            retiring: false,
        });
        Ok(id)
    }

    /// Waits (during start-up) until the replica's port answers.
    async fn wait_ready(&mut self, id: u64) -> Result<(), StartError> {
        let Some(r) = self.replicas.iter().find(|r| r.id == id) else {
            return Ok(());
        };
        let (name, port, timeout) = (r.name.clone(), r.port, self.specs[r.spec].start_timeout);
        let deadline = Instant::now() + timeout;
        loop {
            // Keep draining events: an early exit must be noticed, and log lines recorded.
            while let Ok(event) = self.events.try_recv() {
                if let Event::Exited { id: gone, status } = event
                    && gone == id
                {
                    self.replicas.retain(|r| r.id != id);
                    return Err(self.not_ready(&name, format!("exited with {}", describe(status))));
                }
                self.handle(event);
            }
            let open = match port {
                Some(p) => crate::ports::accepts(p).await,
                None => true,
            };
            if open {
                if let Some(r) = self.replicas.iter_mut().find(|r| r.id == id) {
                    r.phase = Phase::Running;
                }
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.not_ready(
                    &name,
                    format!("port {} closed after {timeout:?}", port.unwrap_or(0)),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn not_ready(&self, name: &str, why: String) -> StartError {
        StartError::NotReady {
            name: name.to_owned(),
            why,
            log: self.logs.path(name).display().to_string(),
            tail: self.logs.tail(name, 20),
        }
    }

    /// After start-up: mark the replica running once its port answers, without blocking.
    fn watch_ready(&self, id: u64) {
        let Some(r) = self.replicas.iter().find(|r| r.id == id) else {
            return;
        };
        let Some(port) = r.port else { return };
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            for _ in 0..600 {
                if crate::ports::accepts(port).await {
                    let _ = events.send(Event::Log {
                        id,
                        line: LogLine::Ready,
                    });
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Log { id, line } => self.on_log(id, line),
            Event::Exited { id, status } => self.on_exit(id, status),
            Event::RestartDue { spec, slot } => {
                if self.pending_restarts.remove(&(spec, slot)).is_none() || self.stopping {
                    return; // cancelled by a scale-down meanwhile
                }
                match self.spawn(spec, slot) {
                    Ok(id) => self.watch_ready(id),
                    Err(e) => {
                        tracing::error!(error = %e, "restart failed; trying again");
                        self.schedule_restart(spec, slot, MAX_BACKOFF);
                    }
                }
            }
        }
    }

    fn on_log(&mut self, id: u64, line: LogLine) {
        let Some(r) = self.replicas.iter_mut().find(|r| r.id == id) else {
            return;
        };
        match line {
            LogLine::Ready => {
                if r.phase == Phase::Starting {
                    r.phase = Phase::Running;
                }
            }
            LogLine::Identity(identity) => {
                match &r.previous_identity {
                    Some(old) => tracing::info!(replica = %r.name, %identity, previous = %old,
                        "{} is back with a new identity {identity} (was {old})", r.name),
                    None => {
                        tracing::info!(replica = %r.name, %identity, "{} runs as {identity}", r.name)
                    }
                }
                self.last_identity
                    .insert((r.spec, r.slot), identity.clone());
                r.identity = Some(identity);
            }
            LogLine::Error(text) => {
                tracing::warn!(replica = %r.name, "{} logged an ERROR: {text}", r.name);
            }
        }
    }

    fn on_exit(&mut self, id: u64, status: Option<ExitStatus>) {
        let Some(pos) = self.replicas.iter().position(|r| r.id == id) else {
            return;
        };
        let r = self.replicas.remove(pos);
        let ran = r.started.elapsed();
        if self.stopping {
            // stop() waits for these itself.
            self.replicas.insert(pos, r);
            self.replicas[pos].phase = Phase::Terminating;
            self.replicas[pos].pid = 0;
            return;
        }
        if r.retiring {
            tracing::info!(replica = %r.name, "{} stopped after scale-down ({}, ran {})", r.name, describe(status), human(ran));
            return;
        }
        let key = (r.spec, r.slot);
        let crashes = if ran >= HEALTHY_AFTER {
            0
        } else {
            self.crash_counts.get(&key).copied().unwrap_or(0) + 1
        };
        self.crash_counts.insert(key, crashes);
        let delay = backoff(crashes);
        let cause = match status.and_then(|s| s.code()) {
            Some(0) if self.specs[r.spec].scalable => "exited by itself (Stop on the Busy page?)",
            Some(0) => "exited by itself",
            _ => "crashed",
        };
        tracing::warn!(replica = %r.name, pid = r.pid, status = %describe(status), restart_in_s = delay.as_secs(),
            "{} {cause} ({}, ran {}); restarting {}", r.name, describe(status), human(ran),
            if delay.is_zero() { "now".to_owned() } else { format!("in {}", human(delay)) });
        self.schedule_restart(r.spec, r.slot, delay);
    }

    fn schedule_restart(&mut self, spec: usize, slot: u32, delay: Duration) {
        self.pending_restarts.insert((spec, slot), ());
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = events.send(Event::RestartDue { spec, slot });
        });
    }

    /// Stops every replica, lowest tier first: SIGTERM, wait up to the grace period, SIGKILL.
    pub async fn stop(&mut self) -> Vec<Stopped> {
        self.stopping = true;
        self.pending_restarts.clear();
        let mut tiers: Vec<u8> = self.specs.iter().map(|s| s.stop_tier).collect();
        tiers.sort_unstable();
        tiers.dedup();
        let mut report = Vec::new();
        for tier in tiers {
            let ids: Vec<u64> = self
                .replicas
                .iter()
                .filter(|r| self.specs[r.spec].stop_tier == tier)
                .map(|r| r.id)
                .collect();
            if ids.is_empty() {
                continue;
            }
            let grace = ids
                .iter()
                .filter_map(|id| self.replicas.iter().find(|r| r.id == *id))
                .map(|r| self.specs[r.spec].stop_grace)
                .max()
                .unwrap_or_default();
            let names: Vec<String> = ids
                .iter()
                .filter_map(|id| self.replicas.iter().find(|r| r.id == *id))
                .map(|r| r.name.clone())
                .collect();
            tracing::info!(
                tier,
                "stopping {} (SIGTERM, up to {})",
                names.join(", "),
                human(grace)
            );
            let started = Instant::now();
            for id in &ids {
                if let Some(r) = self.replicas.iter_mut().find(|r| r.id == *id) {
                    r.retiring = true;
                    if r.phase != Phase::Terminating {
                        r.phase = Phase::Terminating;
                        signal_group(r.pid, libc::SIGTERM);
                    }
                }
            }
            let mut remaining: Vec<u64> = ids.clone();
            let deadline = tokio::time::Instant::now() + grace;
            while !remaining.is_empty() {
                // Replicas whose exit arrived before stop() began carry pid 0.
                remaining.retain(|id| {
                    let gone = self
                        .replicas
                        .iter()
                        .find(|r| r.id == *id)
                        .is_some_and(|r| r.pid == 0);
                    if gone && let Some(pos) = self.replicas.iter().position(|r| r.id == *id) {
                        let r = self.replicas.remove(pos);
                        report.push(Stopped {
                            name: r.name,
                            tier,
                            status: None,
                            killed: false,
                        });
                    }
                    !gone
                });
                if remaining.is_empty() {
                    break;
                }
                let event = tokio::time::timeout_at(deadline, self.events.recv()).await;
                match event {
                    Ok(Some(Event::Exited { id, status })) if remaining.contains(&id) => {
                        remaining.retain(|x| *x != id);
                        if let Some(pos) = self.replicas.iter().position(|r| r.id == id) {
                            let r = self.replicas.remove(pos);
                            tracing::info!(replica = %r.name, "stopped {} ({}) after {}", r.name, describe(status), human(started.elapsed()));
                            report.push(Stopped {
                                name: r.name,
                                tier,
                                status,
                                killed: false,
                            });
                        }
                    }
                    Ok(Some(Event::Log { id, line })) => self.on_log(id, line),
                    Ok(Some(Event::Exited { id, status })) => {
                        // A replica of a later tier died meanwhile: it will not be signalled.
                        if let Some(r) = self.replicas.iter_mut().find(|r| r.id == id) {
                            tracing::warn!(replica = %r.name, "{} exited during the stop ({})", r.name, describe(status));
                            r.pid = 0;
                        }
                    }
                    Ok(Some(Event::RestartDue { .. })) => {}
                    Ok(None) | Err(_) => {
                        for id in &remaining {
                            if let Some(pos) = self.replicas.iter().position(|r| r.id == *id) {
                                let r = self.replicas.remove(pos);
                                tracing::warn!(replica = %r.name, "{} did not stop within {}: SIGKILL", r.name, human(grace));
                                signal_group(r.pid, libc::SIGKILL);
                                report.push(Stopped {
                                    name: r.name,
                                    tier,
                                    status: None,
                                    killed: true,
                                });
                            }
                        }
                        remaining.clear();
                    }
                }
            }
        }
        // Let the log pumps write what the children printed last.
        self.logs.flush().await;
        report
    }
}

fn forward(events: mpsc::UnboundedSender<Event>, id: u64) -> impl Fn(LogLine) + Send + 'static {
    move |line| {
        let _ = events.send(Event::Log { id, line });
    }
}

/// 0 s for a replica that ran a while; then 1, 2, 4 … 30 s while it keeps dying young.
fn backoff(crashes: u32) -> Duration {
    if crashes <= 1 {
        return Duration::ZERO;
    }
    Duration::from_secs(1u64 << (crashes - 2).min(5)).min(MAX_BACKOFF)
}

/// `exit 0`, `exit 1`, `signal 9`.
pub fn describe(status: Option<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exit {code}"),
            (None, Some(sig)) => format!("signal {sig}"),
            _ => "unknown status".into(),
        },
        None => "status unknown".into(),
    }
}

/// `850 ms`, `12.3 s`, `4 min 05 s`.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} min {:02} s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// Sends `signal` to the process group led by `pid` (our children lead their own groups).
#[allow(
    unsafe_code,
    reason = "kill(2) on a process group we created; no memory is touched"
)]
pub fn signal_group(pid: u32, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    if pid <= 1 {
        return;
    }
    // SAFETY: kill has no memory-safety preconditions; a negative pid names the group.
    unsafe {
        libc::kill(-pid, signal);
    }
}

/// Makes the child get SIGTERM if the supervisor dies without stopping it (SIGKILL, panic).
#[allow(
    unsafe_code,
    reason = "pre_exec runs async-signal-safe prctl/getppid only"
)]
fn die_with_parent(cmd: &mut tokio::process::Command) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs between fork and exec and calls only async-signal-safe
    // functions (prctl, getppid, kill on itself), allocating nothing.
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::kill(libc::getpid(), libc::SIGTERM);
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper(name: &str, replicas: u32, scalable: bool, tier: u8) -> ServiceSpec {
        ServiceSpec {
            name: name.into(),
            command: vec!["sleep".into(), "60".into()],
            env: Vec::new(),
            port: None,
            replicas,
            scalable,
            stop_tier: tier,
            stop_grace: Duration::from_secs(5),
            start_timeout: Duration::from_secs(5),
        }
    }

    async fn snapshot(control: &mpsc::Sender<Control>, service: &str) -> Vec<ReplicaInfo> {
        let (reply, answer) = oneshot::channel();
        control
            .send(Control::Snapshot {
                service: service.into(),
                reply,
            })
            .await
            .unwrap();
        answer.await.unwrap()
    }

    async fn until<F: Fn(&[ReplicaInfo]) -> bool>(
        control: &mpsc::Sender<Control>,
        service: &str,
        ok: F,
    ) -> Vec<ReplicaInfo> {
        for _ in 0..200 {
            let list = snapshot(control, service).await;
            if ok(&list) {
                return list;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{service} never reached the expected state: {:?}",
            snapshot(control, service).await
        );
    }

    #[tokio::test]
    async fn restarts_scales_and_stops_by_tier() {
        let dir = std::env::temp_dir().join(format!("supervisor-test-{}", std::process::id()));
        let logs = LogSink::open(&dir).unwrap();
        let mut sup = Supervisor::new(
            vec![sleeper("db", 1, false, 2), sleeper("worker", 2, true, 0)],
            logs,
        );
        sup.start().await.unwrap();
        let (control, requests) = mpsc::channel(8);
        let (stop, stopped) = oneshot::channel::<()>();
        let run = tokio::spawn(sup.run(requests, async {
            let _ = stopped.await;
        }));
        let first = snapshot(&control, "worker").await;
        let names: Vec<&str> = first.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["worker-1", "worker-2"]);

        // A replica that dies is started again under its name, as a new process.
        let victim = first[0].clone();
        signal_group(victim.pid, libc::SIGKILL);
        let again = until(&control, "worker", |l| {
            l.iter()
                .any(|r| r.name == victim.name && r.pid != victim.pid)
        })
        .await;
        assert_eq!(again.len(), 2);

        // Scale up fills the next slot; scale down retires the youngest and does not restart it.
        control
            .send(Control::Scale {
                service: "worker".into(),
                replicas: 3,
            })
            .await
            .unwrap();
        until(&control, "worker", |l| {
            l.iter().any(|r| r.name == "worker-3")
        })
        .await;
        control
            .send(Control::Scale {
                service: "worker".into(),
                replicas: 1,
            })
            .await
            .unwrap();
        let one = until(&control, "worker", |l| l.len() == 1).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            snapshot(&control, "worker").await.len(),
            1,
            "retired replicas stay gone"
        );
        assert_eq!(one[0].name, "worker-2", "the oldest replica is kept");

        // Stop: tier 0 (workers) before tier 2 (db).
        stop.send(()).unwrap();
        let report = run.await.unwrap();
        let tiers: Vec<(String, u8)> = report.iter().map(|s| (s.name.clone(), s.tier)).collect();
        assert_eq!(
            tiers,
            vec![("worker-2".to_owned(), 0), ("db".to_owned(), 2)]
        );
        assert!(report.iter().all(|s| !s.killed), "sleep stops on SIGTERM");
        assert!(dir.join("worker-1.log").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn backoff_grows_and_caps() {
        let seq: Vec<u64> = (0..9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(seq, vec![0, 0, 1, 2, 4, 8, 16, 30, 30]);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human(Duration::from_millis(850)), "850 ms");
        assert_eq!(human(Duration::from_millis(12_340)), "12.3 s");
        assert_eq!(human(Duration::from_secs(245)), "4 min 05 s");
    }
}
