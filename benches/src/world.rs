//! The world the standard event describes: services, their pods, the hosts and zones the pods run
//! on, and the pool of values of every categorical field.
//!
//! The world is built once per process from a fixed seed ([`WORLD_SEED`]), so every generator
//! describes the same fleet whatever its own seed: a generator's seed varies the traffic, not the
//! topology. Several fields are functions of others, as they are in a real fleet:
//! `k8s.pod.name` determines `service.name`, `service.version`, `container.image`, `build.id`,
//! `runtime.version` and `host.name`; `host.name` determines `availability_zone`, `region` and
//! `os.kernel`; `user.id` determines `user.plan`, `user.country`, `app.locale` and the feature
//! flags.

use std::collections::HashSet;
use std::sync::LazyLock;

use crate::dims::{Dim, FEATURES};
use crate::dist::Table;
use crate::draw::{Draw, Kind};
use crate::rng::WorkloadRng;

/// The seed of the world (not of the traffic).
const WORLD_SEED: u64 = 0x10_0BE5_7A2D;

pub(crate) const PODS_PER_SERVICE: usize = 50;
/// Pods of a service on its newest, current and oldest version: a rollout in progress. Even
/// sizes, so the two pods of a build never straddle versions.
const PODS_PER_VERSION: [usize; 3] = [16, 30, 4];
pub(crate) const HOSTS: usize = 200;
pub(crate) const USERS: u64 = 1_000_000;
pub(crate) const CLIENT_IPS: u64 = 50_000;
pub(crate) const CUSTOMERS: usize = 5_000;

/// name, namespace, language (index into [`LANGUAGES`]), gRPC service name.
const SERVICES: [(&str, &str, usize, &str); 12] = [
    ("api-gateway", "edge", GO, "shop.v1.Gateway"),
    ("catalog", "catalog", JVM, "shop.v1.Catalog"),
    ("search", "search", JVM, "shop.v1.Search"),
    ("cart", "storefront", GO, "shop.v1.Cart"),
    ("auth", "identity", GO, "shop.v1.Auth"),
    ("checkout", "storefront", JVM, "shop.v1.Checkout"),
    ("recommendations", "ml", PYTHON, "shop.v1.Recommendations"),
    ("profile", "identity", NODE, "shop.v1.Profile"),
    ("inventory", "fulfillment", JVM, "shop.v1.Inventory"),
    ("payments", "payments", GO, "shop.v1.Payments"),
    ("shipping", "logistics", NODE, "shop.v1.Shipping"),
    (
        "notifications",
        "messaging",
        PYTHON,
        "shop.v1.Notifications",
    ),
];
const GO: usize = 0;
const JVM: usize = 1;
const PYTHON: usize = 2;
const NODE: usize = 3;
/// Runtime versions by language: Go services run the newer toolchain on their newest version.
const LANGUAGES: [&[&str]; 4] = [
    &["go1.23.4", "go1.22.10"],
    &["openjdk-21.0.5"],
    &["python-3.12.7"],
    &["node-22.11.0"],
];

/// Regions and how many of the 200 hosts each has.
const REGIONS: [(&str, usize); 6] = [
    ("us-east-1", 60),
    ("us-west-2", 40),
    ("eu-west-1", 40),
    ("eu-central-1", 20),
    ("ap-southeast-1", 20),
    ("ap-northeast-1", 20),
];
const KERNELS: [&str; 8] = [
    "6.8.0-1019-aws",
    "6.8.0-1017-aws",
    "6.5.0-1024-aws",
    "6.8.0-1015-aws",
    "6.1.0-27-cloud-amd64",
    "5.15.0-1072-aws",
    "6.5.0-1022-aws",
    "5.15.0-1068-aws",
];
const IMAGES: usize = 40;

const METHODS: [(&str, f64); 5] = [
    ("GET", 0.70),
    ("POST", 0.20),
    ("PUT", 0.05),
    ("DELETE", 0.03),
    ("PATCH", 0.02),
];
const ROUTE_RESOURCES: [&str; 16] = [
    "products",
    "cart",
    "orders",
    "users",
    "search",
    "recommendations",
    "payments",
    "sessions",
    "inventory",
    "shipments",
    "reviews",
    "wishlist",
    "coupons",
    "addresses",
    "notifications",
    "categories",
];
const ROUTE_SHAPES: [(&str, &str); 5] = [
    ("/api/v1/", ""),
    ("/api/v1/", "/{id}"),
    ("/api/v1/", "/{id}/items"),
    ("/api/v2/", ""),
    ("/api/v1/", "/batch"),
];
const HTTP_HOSTS: [(&str, f64); 3] = [
    ("api.shop.example", 0.80),
    ("m.shop.example", 0.15),
    ("partner-api.shop.example", 0.05),
];
const PROTOCOLS: [(&str, f64); 3] = [("1.1", 0.25), ("2", 0.65), ("3", 0.10)];
const TLS: [(&str, f64); 2] = [("TLSv1.3", 0.85), ("TLSv1.2", 0.15)];
/// Status codes of requests that did not fail, and their weights.
const STATUS_OK: [(i64, f64); 10] = [
    (200, 86.0),
    (201, 3.5),
    (204, 2.5),
    (301, 0.5),
    (304, 2.0),
    (400, 1.5),
    (401, 1.2),
    (403, 0.5),
    (404, 2.0),
    (429, 0.3),
];
/// Status codes of failed requests, with the gRPC status of the same failure
/// (UNKNOWN, UNAVAILABLE, DEADLINE_EXCEEDED).
pub(crate) const STATUS_FAILED: [(i64, i64); 3] = [(500, 2), (502, 14), (503, 4)];
const STATUS_FAILED_WEIGHTS: [f64; 3] = [0.6, 0.2, 0.2];

const PLANS: [(&str, f64); 3] = [("free", 0.70), ("pro", 0.22), ("enterprise", 0.08)];
/// country, its locale, share of users.
const COUNTRIES: [(&str, &str, f64); 18] = [
    ("US", "en-US", 35.0),
    ("DE", "de-DE", 8.0),
    ("GB", "en-GB", 8.0),
    ("IN", "en-IN", 6.0),
    ("FR", "fr-FR", 6.0),
    ("JP", "ja-JP", 6.0),
    ("BR", "pt-BR", 5.0),
    ("CA", "en-CA", 4.0),
    ("AU", "en-AU", 3.0),
    ("NL", "nl-NL", 3.0),
    ("ES", "es-ES", 3.0),
    ("IT", "it-IT", 3.0),
    ("SE", "sv-SE", 2.0),
    ("PL", "pl-PL", 2.0),
    ("MX", "es-MX", 2.0),
    ("KR", "ko-KR", 2.0),
    ("SG", "en-SG", 1.0),
    ("IE", "en-IE", 1.0),
];
const AUTH: [(&str, f64); 3] = [("session", 0.6), ("bearer", 0.3), ("api_key", 0.1)];
const DB_SYSTEMS: [(&str, f64); 3] = [("postgresql", 0.55), ("redis", 0.25), ("none", 0.20)];
/// Index of `none` in [`DB_SYSTEMS`].
pub(crate) const DB_NONE: u16 = 2;
const FINGERPRINTS: usize = 500;
const RPC_METHODS: [&str; 10] = [
    "Get", "List", "Create", "Update", "Delete", "Search", "Reserve", "Quote", "Validate", "Watch",
];
const JOBS: [&str; 20] = [
    "reindex-products",
    "send-order-emails",
    "expire-carts",
    "sync-inventory",
    "settle-payments",
    "build-recommendations",
    "refresh-search-synonyms",
    "purge-sessions",
    "export-orders",
    "reconcile-refunds",
    "rotate-api-keys",
    "compact-events",
    "generate-invoices",
    "update-exchange-rates",
    "notify-back-in-stock",
    "score-fraud-models",
    "archive-shipments",
    "recompute-ratings",
    "warm-caches",
    "cleanup-uploads",
];
const QUEUES: [(&str, f64); 4] = [
    ("default", 0.6),
    ("critical", 0.1),
    ("bulk", 0.2),
    ("scheduled", 0.1),
];
const MESSAGING: [&str; 3] = ["kafka", "sqs", "rabbitmq"];
/// error.type, the start of error.message, the name of the id the message carries.
pub(crate) const ERRORS: [(&str, &str, &str); 30] = [
    (
        "UpstreamTimeout",
        "upstream call timed out after 3000 ms",
        "request_id",
    ),
    ("ConnectionReset", "connection reset by peer", "conn_id"),
    (
        "ConnectionRefused",
        "connect: connection refused",
        "conn_id",
    ),
    (
        "DeadlineExceeded",
        "context deadline exceeded",
        "request_id",
    ),
    (
        "PoolExhausted",
        "database connection pool exhausted (max 50)",
        "pool_id",
    ),
    (
        "DeadlockDetected",
        "deadlock detected while updating row",
        "txn_id",
    ),
    (
        "SerializationFailure",
        "could not serialize access due to concurrent update",
        "txn_id",
    ),
    (
        "UniqueViolation",
        "duplicate key value violates unique constraint",
        "row_id",
    ),
    (
        "NullPointerException",
        "null reference in request handler",
        "frame_id",
    ),
    (
        "IndexOutOfBounds",
        "index out of range [3] with length 3",
        "frame_id",
    ),
    (
        "OutOfMemory",
        "allocation failed: heap limit reached",
        "alloc_id",
    ),
    ("PaymentDeclined", "card declined by issuer", "payment_id"),
    (
        "FraudCheckFailed",
        "fraud check service returned an error",
        "check_id",
    ),
    (
        "InventoryConflict",
        "stock reservation conflict for sku",
        "sku",
    ),
    ("RateLimited", "downstream rate limit exceeded", "bucket_id"),
    (
        "CircuitOpen",
        "circuit breaker open for upstream",
        "breaker_id",
    ),
    (
        "CacheUnavailable",
        "redis: connection pool timeout",
        "node_id",
    ),
    (
        "DecodeError",
        "failed to decode upstream response body",
        "request_id",
    ),
    (
        "SchemaMismatch",
        "unexpected field in upstream response",
        "request_id",
    ),
    ("AuthTokenExpired", "token expired", "token_id"),
    (
        "PermissionDenied",
        "permission denied for resource",
        "resource_id",
    ),
    ("TlsHandshakeFailed", "tls: handshake failure", "conn_id"),
    ("DnsLookupFailed", "lookup failed: no such host", "query_id"),
    (
        "DiskFull",
        "write failed: no space left on device",
        "volume_id",
    ),
    ("QueueFull", "queue full, message rejected", "message_id"),
    (
        "MessageTooLarge",
        "message exceeds max size of 1 MiB",
        "message_id",
    ),
    (
        "InvalidState",
        "order in invalid state for transition",
        "order_id",
    ),
    (
        "NotSupported",
        "operation not supported by this version",
        "request_id",
    ),
    ("Panic", "panic: runtime error in worker", "worker_id"),
    ("Internal", "internal error", "request_id"),
];
/// Experiments a few events are enrolled in (a sparse field).
pub(crate) const EXPERIMENTS: [&str; 12] = [
    "exp-checkout-button",
    "exp-free-shipping-banner",
    "exp-search-ranking-v3",
    "exp-recs-carousel",
    "exp-onboarding-tour",
    "exp-price-anchoring",
    "exp-one-page-checkout",
    "exp-cart-reminder",
    "exp-guest-checkout",
    "exp-bundle-offers",
    "exp-review-prompts",
    "exp-dark-launch",
];
pub(crate) const DEBUG_FLAGS: [&str; 3] = ["verbose", "sampled-by-rule", "replayed"];

/// A host: its zone (index into the zone pool) and kernel.
#[derive(Debug, Clone)]
pub(crate) struct Host {
    pub(crate) zone: u16,
    pub(crate) kernel: u16,
}

/// A pod, and everything about it that is fixed while it runs.
#[derive(Debug, Clone)]
pub(crate) struct Pod {
    pub(crate) host: u16,
    /// Index into the (deduplicated) version pool.
    pub(crate) version: u16,
    pub(crate) image: u16,
    pub(crate) build: u16,
    pub(crate) runtime: u16,
    pub(crate) pid: i64,
}

/// The fixed world and the distributions traffic is drawn from.
#[derive(Debug)]
pub(crate) struct World {
    /// Values of each [`Dim`], by `Dim::index`.
    pools: Vec<Vec<Box<str>>>,
    pub(crate) pods: Vec<Pod>,
    pub(crate) hosts: Vec<Host>,
    /// Region of each zone.
    pub(crate) zone_region: Vec<u16>,
    /// Namespace of each service.
    pub(crate) service_namespace: Vec<u16>,
    /// Locale of each country.
    pub(crate) country_locale: Vec<u16>,
    pub(crate) status_ok: Vec<i64>,

    pub(crate) kind: Table,
    pub(crate) service: Table,
    pub(crate) method: Table,
    pub(crate) route: Table,
    pub(crate) http_host: Table,
    pub(crate) protocol: Table,
    pub(crate) tls: Table,
    pub(crate) user_agent: Table,
    pub(crate) plan: Table,
    pub(crate) country: Table,
    pub(crate) auth: Table,
    pub(crate) customer: Table,
    pub(crate) db_system: Table,
    pub(crate) fingerprint: Table,
    pub(crate) retries: Table,
    pub(crate) status_ok_table: Table,
    pub(crate) status_failed: Table,
    pub(crate) error_type: Table,
    pub(crate) rpc_method: Table,
    pub(crate) job: Table,
    pub(crate) queue: Table,
}

/// The world, built on first use.
pub(crate) fn world() -> &'static World {
    static WORLD: LazyLock<World> = LazyLock::new(World::build);
    &WORLD
}

impl World {
    /// The values `dim` takes.
    pub(crate) fn values(&self, dim: Dim) -> &[Box<str>] {
        &self.pools[dim.index()]
    }

    /// The value of `dim`, as an index into [`World::values`], on the event `d` describes; `None`
    /// when the event does not have the field.
    pub(crate) fn value_of(&self, dim: Dim, d: &Draw) -> Option<u16> {
        let pod = &self.pods[usize::from(d.pod)];
        let host = &self.hosts[usize::from(pod.host)];
        let http = d.kind == Kind::Http;
        let peer = d.kind != Kind::Job;
        Some(match dim {
            Dim::Name => d.kind as u16,
            Dim::ServiceName => d.service,
            Dim::ServiceVersion => pod.version,
            Dim::Namespace => self.service_namespace[usize::from(d.service)],
            Dim::Pod => d.pod,
            Dim::Host => pod.host,
            Dim::Zone => host.zone,
            Dim::Region => self.zone_region[usize::from(host.zone)],
            Dim::Kernel => host.kernel,
            Dim::Image => pod.image,
            Dim::Build => pod.build,
            Dim::Runtime => pod.runtime,
            Dim::HttpMethod if http => d.method,
            Dim::HttpRoute if http => d.route,
            Dim::HttpHost if http => d.http_host,
            Dim::UserAgent if http => d.user_agent,
            Dim::TlsVersion if peer => d.tls,
            Dim::ProtocolVersion if peer => d.protocol,
            Dim::UserPlan => d.plan,
            Dim::UserCountry => d.country,
            Dim::Locale => self.country_locale[usize::from(d.country)],
            Dim::AuthMethod => d.auth,
            Dim::CustomerId => d.customer,
            Dim::DbSystem => d.db_system,
            Dim::DbFingerprint if d.db_system != DB_NONE => d.fingerprint,
            Dim::CacheHit => u16::from(d.cache_hit),
            Dim::RpcService if d.kind == Kind::Grpc => d.service,
            Dim::RpcMethod if d.kind == Kind::Grpc => d.rpc_method,
            Dim::JobName if d.kind == Kind::Job => d.job,
            Dim::JobQueue if d.kind == Kind::Job => d.queue,
            Dim::MessagingSystem if d.kind == Kind::Job => d.job % MESSAGING.len() as u16,
            Dim::Feature(i) => u16::from((d.features >> i) & 1),
            _ => return None,
        })
    }

    fn build() -> World {
        let mut rng = WorkloadRng::seeded(WORLD_SEED);
        let mut pools: Vec<Vec<Box<str>>> = vec![Vec::new(); Dim::ALL.len()];
        let mut set = |dim: Dim, values: Vec<String>| {
            pools[dim.index()] = values.into_iter().map(String::into_boxed_str).collect();
        };
        let strings = |xs: &[&str]| xs.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let firsts = |xs: &[(&str, f64)]| -> Vec<String> {
            xs.iter().map(|(s, _)| (*s).to_owned()).collect()
        };
        let weights = |xs: &[(&str, f64)]| Table::weighted(xs.iter().map(|(_, w)| *w));

        set(Dim::Name, strings(&Kind::NAMES));
        set(
            Dim::ServiceName,
            SERVICES.iter().map(|s| s.0.to_owned()).collect(),
        );
        set(
            Dim::RpcService,
            SERVICES.iter().map(|s| s.3.to_owned()).collect(),
        );
        let mut namespaces: Vec<String> = Vec::new();
        let service_namespace = SERVICES
            .iter()
            .map(|s| intern(&mut namespaces, s.1))
            .collect();
        set(Dim::Namespace, namespaces);

        // Zones and regions; hosts spread over a region's zones, numbered in shuffled order so
        // a host's name does not give its zone away.
        let mut zones = Vec::new();
        let mut zone_region = Vec::new();
        let mut host_zones = Vec::new();
        for (r, (region, hosts)) in REGIONS.iter().enumerate() {
            for z in ["a", "b", "c"] {
                zones.push(format!("{region}{z}"));
                zone_region.push(r as u16);
            }
            host_zones.extend((0..*hosts).map(|j| (r * 3 + j % 3) as u16));
        }
        assert_eq!(host_zones.len(), HOSTS);
        shuffle(&mut rng, &mut host_zones);
        let kernels = assign_covering(&mut rng, HOSTS, &Table::zipf(KERNELS.len(), 0.8));
        let hosts = (0..HOSTS)
            .map(|i| Host {
                zone: host_zones[i],
                kernel: kernels[i],
            })
            .collect();
        set(
            Dim::Region,
            REGIONS.iter().map(|r| r.0.to_owned()).collect(),
        );
        set(Dim::Zone, zones);
        set(
            Dim::Host,
            (0..HOSTS).map(|i| format!("node-{i:03}")).collect(),
        );
        set(Dim::Kernel, strings(&KERNELS));

        // Pods: 50 per service, 3 per host, a rollout of three versions per service. Each
        // (service, version) runs one image, but the newest version of the first few services
        // is half on a hotfix image: 36 + 4 = 40 images, named in shuffled order.
        let mut host_slots: Vec<u16> = (0..HOSTS as u16).flat_map(|h| [h, h, h]).collect();
        shuffle(&mut rng, &mut host_slots);
        let mut image_names: Vec<u16> = (0..IMAGES as u16).collect();
        shuffle(&mut rng, &mut image_names);
        let mut versions: Vec<String> = Vec::new();
        let mut runtimes: Vec<String> = Vec::new();
        let mut pod_names: Vec<String> = Vec::new();
        let mut pods = Vec::new();
        let mut names_seen = HashSet::new();
        let mut hotfix_images = SERVICES.len() * 3..IMAGES;
        for (s, (service, _, language, _)) in SERVICES.iter().enumerate() {
            let (major, minor, patch) = (1 + s % 4, 2 + (s * 7) % 19, 1 + (s * 5) % 9);
            let version_names = [
                format!("{major}.{}.0", minor + 1),
                format!("{major}.{minor}.{patch}"),
                format!("{major}.{minor}.{}", patch - 1),
            ];
            let mut local = 0;
            for (v, count) in PODS_PER_VERSION.into_iter().enumerate() {
                let version = intern(&mut versions, &version_names[v]);
                let runtime_names = LANGUAGES[*language];
                let runtime = intern(&mut runtimes, runtime_names[v.min(runtime_names.len() - 1)]);
                let replica_set = k8s_suffix(&mut rng, 10);
                let image = s * 3 + v;
                let hotfix = if v == 0 { hotfix_images.next() } else { None };
                for j in 0..count {
                    let pod = pods.len();
                    let name = loop {
                        let name = format!("{service}-{replica_set}-{}", k8s_suffix(&mut rng, 5));
                        if names_seen.insert(name.clone()) {
                            break name;
                        }
                    };
                    pod_names.push(name);
                    let image = match hotfix {
                        Some(h) if j % 2 == 1 => h,
                        _ => image,
                    };
                    pods.push(Pod {
                        host: host_slots[pod],
                        version,
                        image: image_names[image],
                        build: (pod / 2) as u16,
                        runtime,
                        pid: 1 + rng.below(65_000) as i64,
                    });
                    local += 1;
                }
            }
            assert_eq!(local, PODS_PER_SERVICE);
        }
        set(Dim::ServiceVersion, versions);
        set(Dim::Runtime, runtimes);
        set(Dim::Pod, pod_names);
        set(
            Dim::Image,
            (0..IMAGES).map(|i| format!("img-{i:02}")).collect(),
        );
        let builds = distinct(&mut rng, pods.len() / 2, |rng| {
            format!("bld_{:07x}", rng.below(1 << 28))
        });
        set(Dim::Build, builds);

        // Routes: ranked by a shuffle, so the head of the Zipf is a mix of resources.
        let mut routes: Vec<String> = ROUTE_RESOURCES
            .iter()
            .flat_map(|r| ROUTE_SHAPES.map(|(pre, post)| format!("{pre}{r}{post}")))
            .collect();
        shuffle(&mut rng, &mut routes);
        set(Dim::HttpRoute, routes);
        set(Dim::HttpMethod, firsts(&METHODS));
        set(Dim::HttpHost, firsts(&HTTP_HOSTS));
        set(Dim::ProtocolVersion, firsts(&PROTOCOLS));
        set(Dim::TlsVersion, firsts(&TLS));
        set(Dim::UserAgent, user_agents(&mut rng));
        set(Dim::UserPlan, firsts(&PLANS));
        set(
            Dim::UserCountry,
            COUNTRIES.iter().map(|c| c.0.to_owned()).collect(),
        );
        let mut locales = Vec::new();
        let country_locale = COUNTRIES
            .iter()
            .map(|c| intern(&mut locales, c.1))
            .collect();
        set(Dim::Locale, locales);
        set(Dim::AuthMethod, firsts(&AUTH));
        let customers = distinct(&mut rng, CUSTOMERS, |rng| {
            format!("cus_{}", base36(rng, 10))
        });
        set(Dim::CustomerId, customers);
        set(Dim::DbSystem, firsts(&DB_SYSTEMS));
        let fingerprints = distinct(&mut rng, FINGERPRINTS, |rng| {
            format!("{:016x}", rng.below(u64::MAX))
        });
        set(Dim::DbFingerprint, fingerprints);
        set(Dim::RpcMethod, strings(&RPC_METHODS));
        set(Dim::JobName, strings(&JOBS));
        set(Dim::JobQueue, firsts(&QUEUES));
        set(Dim::MessagingSystem, strings(&MESSAGING));
        let bools = strings(&["false", "true"]);
        set(Dim::CacheHit, bools.clone());
        for i in 0..FEATURES.len() {
            set(Dim::Feature(i as u8), bools.clone());
        }

        let world = World {
            pools,
            pods,
            hosts,
            zone_region,
            service_namespace,
            country_locale,
            status_ok: STATUS_OK.iter().map(|s| s.0).collect(),
            kind: Table::weighted(Kind::SHARES),
            service: Table::zipf(SERVICES.len(), 1.0),
            method: weights(&METHODS),
            route: Table::zipf(ROUTE_RESOURCES.len() * ROUTE_SHAPES.len(), 1.1),
            http_host: weights(&HTTP_HOSTS),
            protocol: weights(&PROTOCOLS),
            tls: weights(&TLS),
            user_agent: Table::zipf(200, 1.0),
            plan: weights(&PLANS),
            country: Table::weighted(COUNTRIES.iter().map(|c| c.2)),
            auth: weights(&AUTH),
            customer: Table::zipf(CUSTOMERS, 1.05),
            db_system: weights(&DB_SYSTEMS),
            fingerprint: Table::zipf(FINGERPRINTS, 1.0),
            retries: Table::weighted([0.92, 0.05, 0.015, 0.008, 0.004, 0.003]),
            status_ok_table: Table::weighted(STATUS_OK.iter().map(|s| s.1)),
            status_failed: Table::weighted(STATUS_FAILED_WEIGHTS),
            error_type: Table::zipf(ERRORS.len(), 1.0),
            rpc_method: Table::zipf(RPC_METHODS.len(), 0.8),
            job: Table::zipf(JOBS.len(), 0.9),
            queue: weights(&QUEUES),
        };
        world.check();
        world
    }

    /// Invariants the generator relies on: every pooled string can be written into JSON as is
    /// (no quote, backslash or control character), and the tables and pools agree in size.
    fn check(&self) {
        for (dim, pool) in Dim::ALL.iter().zip(&self.pools) {
            assert!(!pool.is_empty(), "{dim:?} has no values");
            assert!(
                pool.len() <= usize::from(u16::MAX),
                "{dim:?} pool too large"
            );
            for v in pool {
                assert!(json_plain(v), "{dim:?} value {v:?} needs escaping");
            }
        }
        let plain = ERRORS.iter().flat_map(|(a, b, c)| [*a, *b, *c]);
        for s in plain.chain(EXPERIMENTS).chain(DEBUG_FLAGS) {
            assert!(json_plain(s), "{s:?} needs escaping");
        }
        let sizes = [
            (Dim::ServiceName, self.service.len()),
            (Dim::HttpMethod, self.method.len()),
            (Dim::HttpRoute, self.route.len()),
            (Dim::UserAgent, self.user_agent.len()),
            (Dim::CustomerId, self.customer.len()),
            (Dim::DbFingerprint, self.fingerprint.len()),
        ];
        for (dim, n) in sizes {
            assert_eq!(self.values(dim).len(), n, "{dim:?}");
        }
    }
}

/// Whether `s` can be put between JSON quotes without escaping.
pub(crate) fn json_plain(s: &str) -> bool {
    s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\')
}

/// The index of `value` in `pool`, adding it if new.
fn intern(pool: &mut Vec<String>, value: &str) -> u16 {
    let i = pool.iter().position(|v| v == value).unwrap_or_else(|| {
        pool.push(value.to_owned());
        pool.len() - 1
    });
    i as u16
}

/// `n` distinct strings made by `make`.
fn distinct(
    rng: &mut WorkloadRng,
    n: usize,
    mut make: impl FnMut(&mut WorkloadRng) -> String,
) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let s = make(rng);
        if seen.insert(s.clone()) {
            out.push(s);
        }
    }
    out
}

/// Fisher-Yates.
pub(crate) fn shuffle<T>(rng: &mut WorkloadRng, xs: &mut [T]) {
    for i in (1..xs.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        xs.swap(i, j);
    }
}

/// A value from `table` for each of `items`, every value used at least once.
fn assign_covering(rng: &mut WorkloadRng, items: usize, table: &Table) -> Vec<u16> {
    let mut order: Vec<usize> = (0..items).collect();
    shuffle(rng, &mut order);
    let mut out = vec![0; items];
    for (k, item) in order.into_iter().enumerate() {
        out[item] = if k < table.len() {
            k
        } else {
            table.sample(rng)
        } as u16;
    }
    out
}

/// Random characters in the alphabet Kubernetes uses for generated names.
fn k8s_suffix(rng: &mut WorkloadRng, len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..len)
        .map(|_| char::from(ALPHABET[rng.below(ALPHABET.len() as u64) as usize]))
        .collect()
}

fn base36(rng: &mut WorkloadRng, len: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..len)
        .map(|_| char::from(ALPHABET[rng.below(36) as usize]))
        .collect()
}

/// 200 distinct user agents: desktop and mobile browsers, the shop's own apps, and scripts.
fn user_agents(rng: &mut WorkloadRng) -> Vec<String> {
    let family_weights = Table::weighted([30.0, 20.0, 18.0, 8.0, 10.0, 8.0, 6.0]);
    let make = |rng: &mut WorkloadRng| {
        let family = family_weights.sample(rng);
        let mut n = |lo: u64, hi: u64| lo + rng.below(hi - lo + 1);
        match family {
            0 => format!(
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Chrome/{}.0.{}.{} Safari/537.36",
                n(120, 131),
                n(6000, 6800),
                n(40, 200)
            ),
            1 => format!(
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like \
                 Gecko) Chrome/{}.0.{}.{} Safari/537.36",
                n(120, 131),
                n(6000, 6800),
                n(40, 200)
            ),
            2 => {
                let ios = n(16, 18);
                let minor = n(0, 6);
                format!(
                    "Mozilla/5.0 (iPhone; CPU iPhone OS {ios}_{minor} like Mac OS X) \
                     AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{ios}.{minor} \
                     Mobile/15E148 Safari/604.1"
                )
            }
            3 => {
                let v = n(115, 133);
                format!("Mozilla/5.0 (X11; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0")
            }
            4 => format!(
                "shop-android/5.{}.{} (Linux; Android {}; Pixel {})",
                n(0, 12),
                n(0, 9),
                n(12, 15),
                n(5, 9)
            ),
            5 => format!(
                "shop-ios/5.{}.{} (iPhone{},{}; iOS {}.{})",
                n(0, 12),
                n(0, 9),
                n(12, 16),
                n(1, 4),
                n(16, 18),
                n(0, 6)
            ),
            _ => match n(0, 3) {
                0 => format!("curl/8.{}.{}", n(0, 11), n(0, 1)),
                1 => format!("python-requests/2.{}.{}", n(25, 32), n(0, 3)),
                2 => format!("okhttp/4.{}.{}", n(9, 12), n(0, 3)),
                _ => format!("Go-http-client/{}.{}", n(1, 2), n(0, 1)),
            },
        }
    };
    distinct(rng, 200, make)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn world_has_the_documented_shape() {
        let w = world();
        let n = |d: Dim| w.values(d).len();
        assert_eq!(n(Dim::ServiceName), 12);
        assert!(n(Dim::ServiceVersion) >= 30, "3 per service, few shared");
        assert_eq!(n(Dim::HttpRoute), 80);
        assert_eq!(n(Dim::UserAgent), 200);
        assert_eq!(n(Dim::CustomerId), 5_000);
        assert_eq!(n(Dim::Region), 6);
        assert_eq!(n(Dim::Zone), 18);
        assert_eq!(n(Dim::Host), 200);
        assert_eq!(n(Dim::Pod), 600);
        assert_eq!(n(Dim::Namespace), 10);
        assert_eq!(n(Dim::Image), 40);
        assert_eq!(n(Dim::Kernel), 8);
        assert_eq!(n(Dim::Runtime), 5);
        assert_eq!(n(Dim::Build), 300);
        assert_eq!(n(Dim::DbFingerprint), 500);
        // every image, build, kernel and host is in use
        let used = |f: &dyn Fn(&Pod) -> u16| w.pods.iter().map(f).collect::<HashSet<_>>().len();
        assert_eq!(used(&|p| p.image), 40);
        assert_eq!(used(&|p| p.build), 300);
        assert_eq!(used(&|p| p.host), 200);
        let kernels: HashSet<_> = w.hosts.iter().map(|h| h.kernel).collect();
        assert_eq!(kernels.len(), 8);
        // each host in one zone, each zone in one region (by construction), and every zone used
        let zones: HashSet<_> = w.hosts.iter().map(|h| h.zone).collect();
        assert_eq!(zones.len(), 18);
    }

    #[test]
    fn world_is_the_same_every_time() {
        let a = World::build();
        let b = World::build();
        assert_eq!(a.pools, b.pools);
        assert_eq!(a.pools, world().pools);
    }
}
