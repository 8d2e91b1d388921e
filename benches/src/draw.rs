//! Drawing one event: every random choice the standard event needs, made up front into a
//! [`Draw`] of indices and numbers. Rendering (to JSON or to an [`Event`](loupe_event::Event))
//! reads a draw and draws nothing, so both renderings of a seed are the same events.
//!
//! Every draw makes the same random choices whether or not an incident is running (the incident
//! only rescales or flips values already drawn), so outside the incident's reach a stream with an
//! incident is identical to the stream without it.

use rand::RngCore;

use crate::dims::FEATURES;
use crate::dist::{exponential, lognormal, lomax_index};
use crate::rng::{WorkloadRng, hash_unit, mix64};
use crate::world::{CLIENT_IPS, DB_NONE, DEBUG_FLAGS, EXPERIMENTS, PODS_PER_SERVICE, USERS, World};

/// Largest amount an event's timestamp precedes its slot: events arrive in slot order, but
/// carry their start time, up to this much earlier.
pub(crate) const MAX_JITTER_US: i64 = 4_000_000;
/// Mean of the (exponential, capped) jitter.
const JITTER_MEAN_US: f64 = 300_000.0;
/// Share of events that start a trace.
const ROOT_SHARE: f64 = 0.6;
/// How many recent spans a child event may pick its parent from.
const RECENT: usize = 64;
/// Baseline share of failed events.
pub(crate) const BASELINE_ERROR_RATE: f64 = 0.005;
/// Median and sigma of `duration_ms` (lognormal).
pub(crate) const DURATION_MEDIAN_MS: f64 = 45.0;
const DURATION_SIGMA: f64 = 0.9;
/// Scale and shape of the Lomax law of user ranks: the heaviest user makes about 0.4% of the
/// traffic, the top thousand about 70%, and the tail reaches all million users.
const USER_SCALE: f64 = 150.0;
const USER_SHAPE: f64 = 0.6;
/// Rank to user number: a bijection of `0..USERS` (the multiplier is coprime to 10^6), so the
/// heavy users are not `usr_0000000`, `usr_0000001`.
const USER_PERMUTE: u64 = 738_217;
/// Salt of the per-user hash that fixes a user's plan, country, flags and usual address.
const USER_SALT: u64 = 0x5EED_0F05_E25A_17ED;

/// What kind of unit of work the event describes (the `name` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Http = 0,
    Job = 1,
    Grpc = 2,
}

impl Kind {
    pub(crate) const NAMES: [&'static str; 3] = ["http.request", "job.run", "grpc.call"];
    pub(crate) const SHARES: [f64; 3] = [0.90, 0.05, 0.05];

    fn from_index(i: usize) -> Kind {
        match i {
            0 => Kind::Http,
            1 => Kind::Job,
            _ => Kind::Grpc,
        }
    }
}

/// Every choice behind one event. Categorical fields are indices into the world's pools (read
/// them through `World::value_of`); numbers are in their field's unit.
#[derive(Debug, Clone)]
pub(crate) struct Draw {
    pub(crate) ts_us: i64,
    pub(crate) kind: Kind,
    pub(crate) service: u16,
    pub(crate) pod: u16,
    pub(crate) trace_id: (u64, u64),
    pub(crate) span_id: u64,
    pub(crate) parent_id: Option<u64>,

    // http.request and grpc.call
    pub(crate) tls: u16,
    pub(crate) protocol: u16,
    pub(crate) client_ip: u32,
    // http.request
    pub(crate) method: u16,
    pub(crate) route: u16,
    pub(crate) http_host: u16,
    pub(crate) user_agent: u16,
    pub(crate) request_bytes: i64,
    pub(crate) response_bytes: i64,
    pub(crate) status_ok: i64,
    // grpc.call
    pub(crate) rpc_method: u16,
    // job.run
    pub(crate) job: u16,
    pub(crate) queue: u16,

    pub(crate) user: u32,
    pub(crate) plan: u16,
    pub(crate) country: u16,
    pub(crate) session: u64,
    pub(crate) auth: u16,
    pub(crate) customer: u16,
    /// Bit `i` is feature flag `i`.
    pub(crate) features: u8,

    pub(crate) db_system: u16,
    pub(crate) fingerprint: u16,
    pub(crate) db_ms: f64,
    pub(crate) db_count: i64,
    pub(crate) cache_hit: bool,
    pub(crate) cache_ms: f64,
    pub(crate) queue_wait_ms: f64,
    pub(crate) retries: i64,
    pub(crate) items: i64,
    pub(crate) rate_limit_left: i64,
    pub(crate) duration_ms: f64,
    pub(crate) cpu_ms: f64,
    pub(crate) payment_cents: Option<i64>,

    pub(crate) error: bool,
    /// Index into `STATUS_FAILED`: the status a failure reports.
    pub(crate) failure: u16,
    pub(crate) error_type: u16,
    pub(crate) error_id: u64,
    /// Uniform in `[0, 1)`: the coin an `ErrorRate` incident flips for this event.
    pub(crate) incident_coin: f64,

    pub(crate) sparse: Sparse,
}

/// The sparse fields: each on fewer than 5% of events.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sparse {
    /// `experiment.id` (3%).
    pub(crate) experiment: Option<&'static str>,
    /// `client.app_build` (4%).
    pub(crate) app_build: Option<i64>,
    /// `db.rows_examined` (2%).
    pub(crate) rows_examined: Option<i64>,
    /// `upstream.timeout_ms` (1%).
    pub(crate) upstream_timeout_ms: Option<i64>,
    /// `cache.evictions` (1%).
    pub(crate) cache_evictions: Option<i64>,
    /// `gc.pause_ms` (2%).
    pub(crate) gc_pause_ms: Option<f64>,
    /// `debug.flags` (0.3%).
    pub(crate) debug_flags: Option<&'static str>,
}

/// Makes draws from one seed.
#[derive(Debug, Clone)]
pub(crate) struct Drawer {
    rng: WorkloadRng,
    /// (trace id, span id) of recent events: where child events find their parents.
    recent: [((u64, u64), u64); RECENT],
    recent_len: usize,
    recent_next: usize,
}

impl Drawer {
    pub(crate) fn new(seed: u64) -> Drawer {
        Drawer {
            rng: WorkloadRng::seeded(seed),
            recent: [((0, 0), 0); RECENT],
            recent_len: 0,
            recent_next: 0,
        }
    }

    /// Draws the event of the slot at `slot_us`.
    pub(crate) fn draw(&mut self, w: &World, slot_us: i64) -> Draw {
        let r = &mut self.rng;
        let jitter = exponential(r, JITTER_MEAN_US).min(MAX_JITTER_US as f64);
        let ts_us = slot_us - jitter as i64;
        let kind = Kind::from_index(w.kind.sample(r));
        let service = w.service.sample(r);
        let pod = (service * PODS_PER_SERVICE + r.below(PODS_PER_SERVICE as u64) as usize) as u16;

        let (trace_id, parent_id) = if self.recent_len == 0 || r.chance(ROOT_SHARE) {
            ((r.next_u64(), r.next_u64()), None)
        } else {
            let (trace, span) = self.recent[r.below(self.recent_len as u64) as usize];
            (trace, Some(span))
        };
        let span_id = r.next_u64();
        self.recent[self.recent_next] = (trace_id, span_id);
        self.recent_next = (self.recent_next + 1) % RECENT;
        self.recent_len = (self.recent_len + 1).min(RECENT);

        // The user, and what is fixed per user: plan, country, flags, usual address, session.
        let rank = lomax_index(r, USERS, USER_SCALE, USER_SHAPE);
        let user = (rank * USER_PERMUTE + 12_345) % USERS;
        let uh = mix64(user ^ USER_SALT);
        let plan = w.plan.pick(hash_unit(uh ^ 1)) as u16;
        let country = w.country.pick(hash_unit(uh ^ 2)) as u16;
        let mut features = 0u8;
        for (i, (_, share)) in FEATURES.iter().enumerate() {
            if hash_unit(uh ^ (16 + i as u64)) < *share {
                features |= 1 << i;
            }
        }
        // A user's session lasts half an hour.
        let session = mix64(uh ^ (ts_us.div_euclid(1_800_000_000) as u64).wrapping_mul(0x9E37));
        let auth = w.auth.sample(r) as u16;
        let customer = w.customer.sample(r) as u16;

        let mut d = Draw {
            ts_us,
            kind,
            service: service as u16,
            pod,
            trace_id,
            parent_id,
            span_id,
            tls: 0,
            protocol: 0,
            client_ip: 0,
            method: 0,
            route: 0,
            http_host: 0,
            user_agent: 0,
            request_bytes: 0,
            response_bytes: 0,
            status_ok: 200,
            rpc_method: 0,
            job: 0,
            queue: 0,
            user: user as u32,
            plan,
            country,
            session,
            auth,
            customer,
            features,
            db_system: 0,
            fingerprint: 0,
            db_ms: 0.0,
            db_count: 0,
            cache_hit: false,
            cache_ms: 0.0,
            queue_wait_ms: 0.0,
            retries: 0,
            items: 0,
            rate_limit_left: 0,
            duration_ms: 0.0,
            cpu_ms: 0.0,
            payment_cents: None,
            error: false,
            failure: 0,
            error_type: 0,
            error_id: 0,
            incident_coin: 0.0,
            sparse: Sparse::default(),
        };

        if kind != Kind::Job {
            d.tls = w.tls.sample(r) as u16;
            // gRPC is always HTTP/2 (index 1 of the protocol pool).
            d.protocol = if kind == Kind::Http {
                w.protocol.sample(r) as u16
            } else {
                1
            };
            // Most requests come from the user's usual address.
            d.client_ip = if r.chance(0.85) {
                (mix64(uh ^ 3) % CLIENT_IPS) as u32
            } else {
                r.below(CLIENT_IPS) as u32
            };
        }
        match kind {
            Kind::Http => {
                d.method = w.method.sample(r) as u16;
                d.route = w.route.sample(r) as u16;
                d.http_host = w.http_host.sample(r) as u16;
                d.user_agent = w.user_agent.sample(r) as u16;
                // GET (0) and DELETE (3) carry no body.
                d.request_bytes = if matches!(d.method, 0 | 3) {
                    0
                } else {
                    lognormal(r, 350.0, 1.2).round() as i64
                };
                d.response_bytes = lognormal(r, 4_200.0, 1.1).round() as i64;
                d.status_ok = w.status_ok[w.status_ok_table.sample(r)];
                if matches!(d.status_ok, 204 | 304) {
                    d.response_bytes = 0;
                }
            }
            Kind::Grpc => d.rpc_method = w.rpc_method.sample(r) as u16,
            Kind::Job => {
                d.job = w.job.sample(r) as u16;
                d.queue = w.queue.sample(r) as u16;
            }
        }

        d.duration_ms = lognormal(r, DURATION_MEDIAN_MS, DURATION_SIGMA);
        d.cpu_ms = d.duration_ms * (0.1 + 0.5 * r.unit());
        d.db_system = w.db_system.sample(r) as u16;
        if d.db_system != DB_NONE {
            d.fingerprint = w.fingerprint.sample(r) as u16;
            d.db_count = 1 + (exponential(r, 1.5) as i64).min(40);
            let total: f64 = (0..d.db_count).map(|_| lognormal(r, 1.8, 0.7)).sum();
            d.db_ms = total.min(0.8 * d.duration_ms);
        }
        d.cache_hit = r.chance(0.8);
        d.cache_ms = lognormal(r, if d.cache_hit { 0.3 } else { 1.1 }, 0.5);
        d.queue_wait_ms = exponential(r, 4.0);
        d.retries = w.retries.sample(r) as i64;
        d.items = (exponential(r, 30.0) as i64).min(500);
        d.rate_limit_left = r.below(1_001) as i64;
        if r.chance(0.10) {
            d.payment_cents = Some((lognormal(r, 4_500.0, 1.0) as i64).max(50));
        }

        d.error = r.chance(BASELINE_ERROR_RATE);
        d.failure = w.status_failed.sample(r) as u16;
        d.error_type = w.error_type.sample(r) as u16;
        d.error_id = r.next_u64();
        d.incident_coin = r.unit();

        let s = &mut d.sparse;
        if r.chance(0.03) {
            s.experiment = Some(EXPERIMENTS[r.below(EXPERIMENTS.len() as u64) as usize]);
        }
        if r.chance(0.04) {
            s.app_build = Some(4_000 + r.below(200) as i64);
        }
        if r.chance(0.02) {
            s.rows_examined = Some(lognormal(r, 50_000.0, 1.5) as i64);
        }
        if r.chance(0.01) {
            s.upstream_timeout_ms = Some([500, 1_000, 2_000, 5_000][r.below(4) as usize]);
        }
        if r.chance(0.01) {
            s.cache_evictions = Some(1 + r.below(50) as i64);
        }
        if r.chance(0.02) {
            s.gc_pause_ms = Some(lognormal(r, 8.0, 0.8));
        }
        if r.chance(0.003) {
            s.debug_flags = Some(DEBUG_FLAGS[r.below(DEBUG_FLAGS.len() as u64) as usize]);
        }
        d
    }
}
