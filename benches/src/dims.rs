//! The categorical fields of the standard event: those whose value is one of a fixed pool of
//! strings (or a bool). These are the fields an [`Incident`](crate::Incident) cause may name,
//! and the ones [`Incident::planted`](crate::Incident::planted) picks from.

/// A categorical field. Its values are the pool `World::values(dim)`; a draw holds an index
/// into it (see `World::value_of`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Dim {
    Name,
    ServiceName,
    ServiceVersion,
    Namespace,
    Pod,
    Host,
    Zone,
    Region,
    Kernel,
    Image,
    Build,
    Runtime,
    HttpMethod,
    HttpRoute,
    HttpHost,
    UserAgent,
    TlsVersion,
    ProtocolVersion,
    UserPlan,
    UserCountry,
    Locale,
    AuthMethod,
    CustomerId,
    DbSystem,
    DbFingerprint,
    CacheHit,
    RpcService,
    RpcMethod,
    JobName,
    JobQueue,
    MessagingSystem,
    Feature(u8),
}

/// The feature flags: field name and the share of users who have it on.
pub(crate) const FEATURES: [(&str, f64); 8] = [
    ("feature.new_checkout", 0.30),
    ("feature.dark_mode", 0.45),
    ("feature.search_v2", 0.20),
    ("feature.fast_cart", 0.10),
    ("feature.recs_model_b", 0.50),
    ("feature.one_click_pay", 0.05),
    ("feature.edge_cache", 0.35),
    ("feature.async_payments", 0.15),
];

impl Dim {
    /// Every dimension, in a fixed order (`index` is the position here).
    pub(crate) const ALL: [Dim; 39] = [
        Dim::Name,
        Dim::ServiceName,
        Dim::ServiceVersion,
        Dim::Namespace,
        Dim::Pod,
        Dim::Host,
        Dim::Zone,
        Dim::Region,
        Dim::Kernel,
        Dim::Image,
        Dim::Build,
        Dim::Runtime,
        Dim::HttpMethod,
        Dim::HttpRoute,
        Dim::HttpHost,
        Dim::UserAgent,
        Dim::TlsVersion,
        Dim::ProtocolVersion,
        Dim::UserPlan,
        Dim::UserCountry,
        Dim::Locale,
        Dim::AuthMethod,
        Dim::CustomerId,
        Dim::DbSystem,
        Dim::DbFingerprint,
        Dim::CacheHit,
        Dim::RpcService,
        Dim::RpcMethod,
        Dim::JobName,
        Dim::JobQueue,
        Dim::MessagingSystem,
        Dim::Feature(0),
        Dim::Feature(1),
        Dim::Feature(2),
        Dim::Feature(3),
        Dim::Feature(4),
        Dim::Feature(5),
        Dim::Feature(6),
        Dim::Feature(7),
    ];

    /// The dimensions [`Incident::planted`](crate::Incident::planted) draws causes from: the
    /// usual suspects of an incident (a deploy, a host, a kernel, a customer, a route, a flag).
    pub(crate) const PLANTABLE: [Dim; 20] = [
        Dim::ServiceName,
        Dim::ServiceVersion,
        Dim::Host,
        Dim::Zone,
        Dim::Region,
        Dim::Kernel,
        Dim::Image,
        Dim::Build,
        Dim::Runtime,
        Dim::HttpMethod,
        Dim::HttpRoute,
        Dim::UserPlan,
        Dim::UserCountry,
        Dim::CustomerId,
        Dim::DbSystem,
        Dim::Feature(0),
        Dim::Feature(2),
        Dim::Feature(3),
        Dim::Feature(6),
        Dim::Feature(7),
    ];

    pub(crate) fn index(self) -> usize {
        match self {
            Dim::Name => 0,
            Dim::ServiceName => 1,
            Dim::ServiceVersion => 2,
            Dim::Namespace => 3,
            Dim::Pod => 4,
            Dim::Host => 5,
            Dim::Zone => 6,
            Dim::Region => 7,
            Dim::Kernel => 8,
            Dim::Image => 9,
            Dim::Build => 10,
            Dim::Runtime => 11,
            Dim::HttpMethod => 12,
            Dim::HttpRoute => 13,
            Dim::HttpHost => 14,
            Dim::UserAgent => 15,
            Dim::TlsVersion => 16,
            Dim::ProtocolVersion => 17,
            Dim::UserPlan => 18,
            Dim::UserCountry => 19,
            Dim::Locale => 20,
            Dim::AuthMethod => 21,
            Dim::CustomerId => 22,
            Dim::DbSystem => 23,
            Dim::DbFingerprint => 24,
            Dim::CacheHit => 25,
            Dim::RpcService => 26,
            Dim::RpcMethod => 27,
            Dim::JobName => 28,
            Dim::JobQueue => 29,
            Dim::MessagingSystem => 30,
            Dim::Feature(i) => 31 + usize::from(i),
        }
    }

    pub(crate) const fn field(self) -> &'static str {
        match self {
            Dim::Name => "name",
            Dim::ServiceName => "service.name",
            Dim::ServiceVersion => "service.version",
            Dim::Namespace => "k8s.namespace",
            Dim::Pod => "k8s.pod.name",
            Dim::Host => "host.name",
            Dim::Zone => "availability_zone",
            Dim::Region => "region",
            Dim::Kernel => "os.kernel",
            Dim::Image => "container.image",
            Dim::Build => "build.id",
            Dim::Runtime => "runtime.version",
            Dim::HttpMethod => "http.method",
            Dim::HttpRoute => "http.route",
            Dim::HttpHost => "http.host",
            Dim::UserAgent => "http.user_agent",
            Dim::TlsVersion => "tls.version",
            Dim::ProtocolVersion => "network.protocol.version",
            Dim::UserPlan => "user.plan",
            Dim::UserCountry => "user.country",
            Dim::Locale => "app.locale",
            Dim::AuthMethod => "auth.method",
            Dim::CustomerId => "customer.id",
            Dim::DbSystem => "db.system",
            Dim::DbFingerprint => "db.statement_fingerprint",
            Dim::CacheHit => "cache.hit",
            Dim::RpcService => "rpc.service",
            Dim::RpcMethod => "rpc.method",
            Dim::JobName => "job.name",
            Dim::JobQueue => "job.queue",
            Dim::MessagingSystem => "messaging.system",
            Dim::Feature(i) => FEATURES[i as usize].0,
        }
    }

    pub(crate) fn from_field(name: &str) -> Option<Dim> {
        Dim::ALL.into_iter().find(|d| d.field() == name)
    }

    /// Whether the field is a JSON bool (its values are `"false"` and `"true"`).
    pub(crate) fn is_bool(self) -> bool {
        matches!(self, Dim::CacheHit | Dim::Feature(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_position_and_names_round_trip() {
        for (i, d) in Dim::ALL.into_iter().enumerate() {
            assert_eq!(d.index(), i);
            assert_eq!(Dim::from_field(d.field()), Some(d));
        }
        assert_eq!(Dim::from_field("duration_ms"), None);
    }
}
