//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several replicas exactly
//! one writes to targets and the others stand by.
//!
//! [`kube-lease-manager`](kube_lease_manager) acquires, renews and releases the Lease. This
//! module adds the one guarantee the controller needs on top: [`Leadership::is_leader`] is
//! true only while the Lease, as this replica last read it, names this replica as holder AND
//! its last renewal is younger than the lease duration. A replica whose renewals fail (API
//! server unreachable, requests timing out) turns itself into a standby when its last
//! renewal expires, without waiting for anyone's confirmation, so two replicas never both
//! write: another replica may take the Lease over only after that same instant (plus the
//! clock skew between nodes, which the renewal grace period covers).
//!
//! How it knows: the election task reads the Lease on its own every `poll_interval` (and at
//! once when the lease manager reports a change) and derives validity from the Lease's
//! `renewTime`, which this replica wrote with its own clock: valid until `renewTime +
//! leaseDurationSeconds`. The renewal happens `renew_grace` before that instant, so a poll
//! interval shorter than the grace sees each renewal before the previous one lapses.
//! The wall clock is read only to turn a renewal into time left; the deadline itself runs on
//! tokio's clock ([`tokio::time::Instant`]), counted once per renewal from the read that first
//! showed it, so a renewal read again later (renewals failing, reads still answering) does not
//! extend it, and a paused test clock moves it.
//!
//! Starvation: the election uses a client of its own ([`dedicated_client`]): its own request
//! queue and its own HTTP connection, so a burst of reconcile traffic (a relist of thousands
//! of Rollouts, status writes) queued on the controller's client cannot delay a renewal.
//! Its requests have a timeout shorter than the grace period, so one hung request cannot
//! outlast the lease either. The task itself only awaits I/O and timers, so on tokio's
//! multi-threaded runtime it runs whenever its timer fires; and should it ever be delayed,
//! `is_leader` compares with the clock at the moment it is asked, not with the last poll.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use kube_lease_manager::{LeaseCreateMode, LeaseManager, LeaseManagerBuilder, LeaseParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{Instrument as _, debug, info, warn};

/// Where this replica stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaderStatus {
    /// Leader election is off (`--leader-elect` not given): this replica always acts.
    Unelected,
    /// This replica holds the Lease and renewed it within the lease duration.
    Leading,
    /// Another replica holds the Lease, or this one cannot confirm that it does.
    Standby {
        /// The holder named in the Lease as last read, when there is one.
        holder: Option<String>,
    },
    /// The election has stopped (shutdown); this replica no longer acts.
    Stopped,
}

impl LeaderStatus {
    /// A short word for logs and `/readyz`: `unelected`, `leader`, `standby` or `stopped`.
    pub fn as_str(&self) -> &'static str {
        match self {
            LeaderStatus::Unelected => "unelected",
            LeaderStatus::Leading => "leader",
            LeaderStatus::Standby { .. } => "standby",
            LeaderStatus::Stopped => "stopped",
        }
    }
}

/// What the election task publishes.
#[derive(Clone, Debug)]
struct State {
    status: LeaderStatus,
    /// Until when a `Leading` status holds without a newer renewal, on tokio's clock.
    valid_until: Option<Instant>,
    /// The renewal (`renewTime + leaseDurationSeconds`, wall clock) `valid_until` counts from.
    renewed: Option<SystemTime>,
}

impl State {
    fn is_leader(&self, now: Instant) -> bool {
        match self.status {
            LeaderStatus::Unelected => true,
            LeaderStatus::Leading => self.valid_until.is_some_and(|until| now < until),
            LeaderStatus::Standby { .. } | LeaderStatus::Stopped => false,
        }
    }

    /// This state at `now`: a `Leading` state whose renewal has run out is a standby with no
    /// confirmed holder.
    fn at(&self, now: Instant) -> State {
        match self.status {
            LeaderStatus::Leading if !self.is_leader(now) => State {
                status: LeaderStatus::Standby { holder: None },
                valid_until: None,
                renewed: None,
            },
            _ => self.clone(),
        }
    }
}

/// A handle on this replica's leadership. Cheap to clone; every clone sees the same state.
#[derive(Clone, Debug)]
pub struct Leadership {
    state: watch::Receiver<State>,
}

impl Leadership {
    /// Leadership without election: always the leader (`--leader-elect` off, one replica).
    pub fn always() -> Leadership {
        let (_sender, state) = watch::channel(State {
            status: LeaderStatus::Unelected,
            valid_until: None,
            renewed: None,
        });
        Leadership { state }
    }

    /// True while this replica may write: it holds the Lease and renewed it within the lease
    /// duration (or election is off). Checked against the clock now, so it turns false when
    /// the last renewal expires even if the election task has not run since.
    pub fn is_leader(&self) -> bool {
        self.state.borrow().is_leader(Instant::now())
    }

    /// True while this replica may write and its last renewal keeps the Lease at least
    /// `margin` longer (always without election): the fence before a write that may take up
    /// to `margin`, so a write never lands after the Lease could have passed to another replica.
    pub fn held_for(&self, margin: Duration) -> bool {
        let state = self.state.borrow();
        match state.status {
            LeaderStatus::Unelected => true,
            LeaderStatus::Leading => state
                .valid_until
                .is_some_and(|until| Instant::now() + margin < until),
            LeaderStatus::Standby { .. } | LeaderStatus::Stopped => false,
        }
    }

    /// Where this replica stands (for `/readyz` and logs). A `Leading` status whose renewal
    /// has expired is reported as a standby.
    pub fn status(&self) -> LeaderStatus {
        let state = self.state.borrow();
        match &state.status {
            LeaderStatus::Leading if !state.is_leader(Instant::now()) => {
                LeaderStatus::Standby { holder: None }
            }
            status => status.clone(),
        }
    }

    /// Waits until [`is_leader`](Self::is_leader) may have changed since this handle last
    /// waited, and returns its value then (a wakeup may repeat the value it had). Without
    /// election, or once the election task has ended, this never returns: nothing will change
    /// any more.
    pub async fn changed(&mut self) -> bool {
        match self.state.changed().await {
            Ok(()) => self.is_leader(),
            Err(_ended) => std::future::pending().await,
        }
    }

    /// Keeps `rollgate_leader` equal to [`is_leader`](Self::is_leader) until the election
    /// ends (a task on the current runtime; abort it to stop earlier).
    pub fn report_to(&self, metrics: crate::telemetry::Metrics) -> JoinHandle<()> {
        let mut leadership = self.clone();
        tokio::spawn(async move {
            metrics.set_leader(leadership.is_leader());
            loop {
                let leading = leadership.changed().await;
                metrics.set_leader(leading);
            }
        })
    }

    /// Waits until this replica leads (at once if it does).
    pub async fn until_leader(&mut self) {
        while !self.is_leader() {
            self.changed().await;
        }
    }

    /// Waits until this replica stops leading (at once if it does not lead): lost the Lease,
    /// could not renew it in time, or shut down. Never returns without election.
    pub async fn until_not_leader(&mut self) {
        while self.is_leader() {
            self.changed().await;
        }
    }
}

/// How the election runs. [`ElectionSettings::new`] gives client-go's usual timings.
#[derive(Clone, Debug)]
pub struct ElectionSettings {
    /// The namespace of the Lease (`--leader-election-namespace`).
    pub namespace: String,
    /// The Lease's name (`--leader-election-id`).
    pub lease_name: String,
    /// This replica's identity in the Lease: unique per process.
    pub identity: String,
    /// How long a renewal holds (whole seconds, at least 2).
    pub lease_duration: Duration,
    /// How long before expiry the holder renews (whole seconds, at least 1, less than the
    /// lease duration); it also bounds the clock skew between nodes that stays safe.
    pub renew_grace: Duration,
    /// How often this replica reads the Lease to confirm its renewals; less than the grace.
    pub poll_interval: Duration,
}

impl ElectionSettings {
    /// Settings for the Lease `namespace/lease_name`: lease 15 s, renewed 5 s before it
    /// expires, read every 2 s, and an identity from the pod's name plus a per-process suffix.
    pub fn new(namespace: impl Into<String>, lease_name: impl Into<String>) -> ElectionSettings {
        ElectionSettings {
            namespace: namespace.into(),
            lease_name: lease_name.into(),
            identity: default_identity(),
            lease_duration: Duration::from_secs(15),
            renew_grace: Duration::from_secs(5),
            poll_interval: Duration::from_secs(2),
        }
    }

    /// The timeout of every election request: half the grace period, at least 500 ms, so a
    /// hung request fails while a renewal can still be retried.
    pub fn request_timeout(&self) -> Duration {
        (self.renew_grace / 2).max(Duration::from_millis(500))
    }

    fn validate(&self) -> Result<(), LeaderError> {
        let whole = |d: Duration| d.subsec_nanos() == 0;
        if self.namespace.is_empty() || self.lease_name.is_empty() {
            return Err(LeaderError::Settings(
                "the lease namespace and name must not be empty".to_owned(),
            ));
        }
        if self.identity.is_empty() {
            return Err(LeaderError::Settings(
                "the identity must not be empty".to_owned(),
            ));
        }
        if !whole(self.lease_duration) || !whole(self.renew_grace) {
            return Err(LeaderError::Settings(
                "the lease duration and renewal grace must be whole seconds".to_owned(),
            ));
        }
        if self.renew_grace.is_zero() || self.renew_grace >= self.lease_duration {
            return Err(LeaderError::Settings(format!(
                "the renewal grace ({}s) must be at least 1s and less than the lease duration ({}s)",
                self.renew_grace.as_secs(),
                self.lease_duration.as_secs()
            )));
        }
        if self.lease_duration.as_secs() > i32::MAX as u64 {
            return Err(LeaderError::Settings(
                "the lease duration is too long".to_owned(),
            ));
        }
        if self.poll_interval.is_zero() || self.poll_interval >= self.renew_grace {
            return Err(LeaderError::Settings(format!(
                "the poll interval ({:?}) must be positive and less than the renewal grace ({}s)",
                self.poll_interval,
                self.renew_grace.as_secs()
            )));
        }
        Ok(())
    }
}

/// Why leader election could not start.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The settings are inconsistent.
    #[error("leader election settings: {0}")]
    Settings(String),
    /// The election's own Kubernetes client could not be built.
    #[error("leader election client: {0}")]
    Client(#[source] kube::Error),
}

/// A Kubernetes client for the election alone, so renewals never wait behind the
/// controller's other requests: its own request queue and connection, and requests that time
/// out after [`ElectionSettings::request_timeout`].
pub fn dedicated_client(
    mut config: kube::Config,
    settings: &ElectionSettings,
) -> Result<Client, LeaderError> {
    let timeout = settings.request_timeout();
    config.connect_timeout = Some(timeout);
    config.read_timeout = Some(timeout);
    config.write_timeout = Some(timeout);
    Client::try_from(config).map_err(LeaderError::Client)
}

/// Starts the election on `client` (use [`dedicated_client`]) and returns the leadership
/// handle and the election task. The task runs until `shutdown` resolves; then this replica
/// stops leading at once (the handle turns false before anything else happens) and releases
/// the Lease, so a standby takes over without waiting for it to expire.
///
/// The Lease is created when it does not exist. When the API server cannot be reached at
/// the start, the task keeps trying (with backoff) and the replica stands by meanwhile.
pub fn spawn_election<F>(
    client: Client,
    settings: ElectionSettings,
    shutdown: F,
) -> Result<(Leadership, JoinHandle<()>), LeaderError>
where
    F: Future<Output = ()> + Send + 'static,
{
    settings.validate()?;
    let (sender, receiver) = watch::channel(State {
        status: LeaderStatus::Standby { holder: None },
        valid_until: None,
        renewed: None,
    });
    let span = tracing::info_span!(
        "leader_election",
        lease = %format!("{}/{}", settings.namespace, settings.lease_name),
        identity = %settings.identity
    );
    let task = tokio::spawn(run(client, settings, sender, shutdown).instrument(span));
    Ok((Leadership { state: receiver }, task))
}

async fn run<F>(
    client: Client,
    settings: ElectionSettings,
    sender: watch::Sender<State>,
    shutdown: F,
) where
    F: Future<Output = ()> + Send + 'static,
{
    tokio::pin!(shutdown);

    let Some(manager) = build_manager(&client, &settings, &mut shutdown).await else {
        sender.send_replace(stopped());
        return;
    };
    let mut manager = Arc::new(manager);
    let api: Api<Lease> = Api::namespaced(client.clone(), &settings.namespace);
    let mut observed = Observation::default();
    // The state as of the last successful read; a read that fails keeps it (its deadline on
    // tokio's clock still runs out).
    let mut current = State {
        status: LeaderStatus::Standby { holder: None },
        valid_until: None,
        renewed: None,
    };
    let mut wake_in = Duration::ZERO;
    let mut backoff = MIN_BACKOFF;
    // The lease manager's own loop: acquires the Lease when it is free or expired, renews
    // it while held, and returns when the holder changes (or on an API error).
    let mut attempt = manager_pass(manager.clone(), Duration::ZERO);

    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            result = &mut attempt => {
                let wait = match result {
                    Ok(_) => {
                        backoff = MIN_BACKOFF;
                        Duration::ZERO
                    }
                    Err(error) => {
                        warn!(%error, retry_in = ?backoff, "leader election failed to reach the lease");
                        let wait = backoff;
                        backoff = (backoff * 2).min(settings.lease_duration);
                        wait
                    }
                };
                attempt = manager_pass(manager.clone(), wait);
            }
            () = tokio::time::sleep(wake_in) => {}
        }
        let mut fresh_observation = None;
        if let Some(fresh) = read_lease(&api, &settings).await {
            // A standby's lease manager sleeps until the holder's Lease would expire; when the
            // holder releases it early (a clean shutdown), start a fresh manager, which sees
            // the free Lease at once and takes it.
            let released = fresh.holder.is_none() && observed.holder.is_some() && !observed.ours;
            // Someone deleted the Lease: the lease manager cannot renew a Lease that does not
            // exist; a fresh one creates it again.
            let deleted = !fresh.exists;
            observed = fresh.clone();
            fresh_observation = Some(fresh);
            if released || deleted {
                match try_build(&client, &settings).await {
                    Ok(fresh_manager) => {
                        debug!(released, deleted, "starting a fresh lease manager");
                        manager = Arc::new(fresh_manager);
                        attempt = manager_pass(manager.clone(), Duration::ZERO);
                    }
                    Err(error) => debug!(%error, "could not restart the lease manager"),
                }
            }
        }
        let now = Instant::now();
        if let Some(fresh) = fresh_observation.take() {
            current = fresh.state(now, SystemTime::now(), &current);
        }
        let state = current.at(now);
        publish(&sender, state.clone());
        wake_in = match state.valid_until {
            Some(until) if state.status == LeaderStatus::Leading => settings
                .poll_interval
                .min(until.saturating_duration_since(now)),
            _ => settings.poll_interval,
        };
    }

    // Stop acting before releasing: the handle turns false first.
    publish(&sender, stopped());
    drop(attempt);
    // Release only a Lease this replica holds now: the lease manager's own view may be stale
    // (it learns of a takeover only at its next renewal), and releasing would then clear the
    // new holder's claim.
    match read_lease(&api, &settings).await {
        Some(now) if now.ours => {
            match tokio::time::timeout(settings.lease_duration, manager.release()).await {
                Ok(Ok(())) => info!("released the lease"),
                Ok(Err(error)) => {
                    warn!(%error, "could not release the lease; it expires on its own")
                }
                Err(_elapsed) => warn!("releasing the lease timed out; it expires on its own"),
            }
        }
        Some(_) => debug!("not the holder; nothing to release"),
        None => warn!("could not read the lease at shutdown; it expires on its own"),
    }
}

/// One pass of the lease manager's loop, possibly after a backoff.
type Attempt = std::pin::Pin<
    Box<dyn Future<Output = Result<bool, kube_lease_manager::LeaseManagerError>> + Send>,
>;

/// Runs the lease manager's loop after `wait`, until the holder changes or an error.
fn manager_pass(manager: Arc<LeaseManager>, wait: Duration) -> Attempt {
    Box::pin(async move {
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        manager.changed().await
    })
}

/// The first wait after a failed pass of the lease manager's loop; it doubles up to the lease
/// duration.
const MIN_BACKOFF: Duration = Duration::from_millis(250);

/// Reads the Lease (with the election's request timeout); `None` when it could not be read.
async fn read_lease(api: &Api<Lease>, settings: &ElectionSettings) -> Option<Observation> {
    match tokio::time::timeout(
        settings.request_timeout(),
        api.get_opt(&settings.lease_name),
    )
    .await
    {
        Ok(Ok(lease)) => Some(Observation::of(lease.as_ref(), &settings.identity)),
        Ok(Err(error)) => {
            debug!(%error, "could not read the lease; keeping the last observation");
            None
        }
        Err(_elapsed) => {
            debug!("reading the lease timed out; keeping the last observation");
            None
        }
    }
}

fn stopped() -> State {
    State {
        status: LeaderStatus::Stopped,
        valid_until: None,
        renewed: None,
    }
}

/// Publishes a state, waking waiters only when the status changed (a new expiry alone does
/// not wake anyone).
fn publish(sender: &watch::Sender<State>, state: State) {
    sender.send_if_modified(|current| {
        let changed = current.status != state.status;
        if changed {
            info!(
                from = current.status.as_str(),
                to = state.status.as_str(),
                "leadership changed"
            );
        }
        *current = state;
        changed
    });
}

/// Builds the lease manager (it reads, and if needed creates, the Lease), retrying with
/// backoff; `None` when `shutdown` resolved first.
async fn build_manager<F>(
    client: &Client,
    settings: &ElectionSettings,
    shutdown: &mut std::pin::Pin<&mut F>,
) -> Option<LeaseManager>
where
    F: Future<Output = ()>,
{
    let mut backoff = Duration::from_millis(200);
    loop {
        let result = tokio::select! {
            biased;
            () = shutdown.as_mut() => return None,
            result = try_build(client, settings) => result,
        };
        match result {
            Ok(manager) => return Some(manager),
            Err(error) => warn!(%error, "cannot reach the leader lease yet; standing by"),
        }
        tokio::select! {
            biased;
            () = shutdown.as_mut() => return None,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(settings.lease_duration);
    }
}

/// Builds a lease manager once: it reads the Lease, creating it when absent.
async fn try_build(client: &Client, settings: &ElectionSettings) -> Result<LeaseManager, String> {
    let params = LeaseParams::new(
        settings.identity.clone(),
        settings.lease_duration.as_secs(),
        settings.renew_grace.as_secs(),
    )
    .with_field_manager(format!("rollgate-leader-{}", settings.identity));
    let build = LeaseManagerBuilder::new(client.clone(), settings.lease_name.clone())
        .with_namespace(settings.namespace.clone())
        .with_parameters(params)
        .with_create_mode(LeaseCreateMode::AutoCreate)
        .build();
    match tokio::time::timeout(settings.request_timeout() * 2, build).await {
        Ok(Ok(manager)) => Ok(manager),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_elapsed) => Err("reading the lease timed out".to_owned()),
    }
}

/// The Lease as last read, from this replica's point of view.
#[derive(Clone, Debug, Default)]
struct Observation {
    /// Whether the Lease exists.
    exists: bool,
    holder: Option<String>,
    ours: bool,
    /// The wall-clock instant our last renewal expires (`renewTime + leaseDurationSeconds`).
    expires: Option<SystemTime>,
}

impl Observation {
    fn of(lease: Option<&Lease>, identity: &str) -> Observation {
        let Some(lease) = lease else {
            return Observation::default();
        };
        let Some(spec) = lease.spec.as_ref() else {
            return Observation {
                exists: true,
                ..Observation::default()
            };
        };
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let ours = holder.as_deref() == Some(identity);
        let expires = match (&spec.renew_time, spec.lease_duration_seconds) {
            (Some(renew), Some(seconds)) if seconds > 0 => {
                let renewed: SystemTime = renew.0.into();
                renewed.checked_add(Duration::from_secs(seconds.unsigned_abs().into()))
            }
            _ => None,
        };
        Observation {
            exists: true,
            holder,
            ours,
            expires,
        }
    }

    /// The state this observation gives, read at `now` (tokio's clock) and `wall` (the wall
    /// clock the Lease's `renewTime` is written in). The deadline is set on tokio's clock once
    /// per renewal: a later read that shows the same `renewTime` keeps the deadline it had,
    /// so leadership runs out one lease duration after the last renewal this replica saw,
    /// even when the wall clock stands still or jumps.
    fn state(&self, now: Instant, wall: SystemTime, previous: &State) -> State {
        let remaining = self
            .expires
            .and_then(|expires| expires.duration_since(wall).ok())
            .filter(|left| !left.is_zero());
        match remaining {
            Some(left) if self.ours => {
                let fresh = now + left;
                let valid_until = match (previous.renewed, previous.valid_until) {
                    (Some(renewed), Some(until)) if Some(renewed) == self.expires => {
                        until.min(fresh)
                    }
                    _ => fresh,
                };
                State {
                    status: LeaderStatus::Leading,
                    valid_until: Some(valid_until),
                    renewed: self.expires,
                }
            }
            _ => State {
                status: LeaderStatus::Standby {
                    holder: self.holder.clone().filter(|_| !self.ours),
                },
                valid_until: None,
                renewed: None,
            },
        }
    }
}

/// The pod's name (`POD_NAME`, else `HOSTNAME`) with a per-process suffix, so a restarted
/// container never mistakes its predecessor's Lease for its own.
pub fn default_identity() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "rollgate".to_owned());
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{host}_{:x}{nanos:08x}", std::process::id())
}

impl crate::telemetry::Role for Leadership {
    fn describe(&self) -> String {
        match self.status() {
            LeaderStatus::Unelected => "leader election off".to_owned(),
            LeaderStatus::Leading => "leader".to_owned(),
            LeaderStatus::Standby {
                holder: Some(holder),
            } => format!("standby (leader: {holder})"),
            LeaderStatus::Standby { holder: None } => "standby (no confirmed leader)".to_owned(),
            LeaderStatus::Stopped => "stopped (shutting down)".to_owned(),
        }
    }
}
