//! The series of each kind of usage report, resolved once: a report is counted without
//! building its label sets (cloned strings) and hashing them in every family again.

use crate::hash::FastState;
use crate::usage::UsageReport;
use agw_core::route::RouteKind;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};

/// The series one kind of report updates, each resolved from its family the first time it is
/// needed (a series appears in the exposition only once something was recorded in it).
#[derive(Debug, Default)]
pub(super) struct Series {
    pub requests: OnceLock<super::Count>,
    pub added: OnceLock<Histogram>,
    pub duration: OnceLock<Histogram>,
    pub ttft: OnceLock<Histogram>,
    /// Input, output.
    pub token_usage: [OnceLock<Histogram>; 2],
    /// Input, output, cache write, cache read.
    pub tokens: [OnceLock<super::Count>; 4],
    pub cost: OnceLock<Counter<f64, AtomicU64>>,
}

/// What decides every label of a report's series.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SeriesKey {
    route: RouteKind,
    status: u16,
    backend: Option<Arc<str>>,
    provider: Option<Arc<str>>,
    request_model: Option<String>,
    response_model: Option<String>,
    /// Only with identity labels.
    identity: Option<(String, Option<String>)>,
}

impl SeriesKey {
    fn matches(&self, r: &UsageReport, identity: Option<(&str, Option<&str>)>) -> bool {
        self.route == r.route
            && self.status == r.status.as_u16()
            && self.backend.as_deref() == r.backend.as_deref()
            && self.provider.as_deref() == r.provider.as_deref()
            && self.request_model.as_deref() == r.request_model.as_deref()
            && self.response_model.as_deref() == r.response_model.as_deref()
            && self
                .identity
                .as_ref()
                .map(|(n, t)| (n.as_str(), t.as_deref()))
                == identity
    }
}

/// [`Series`] by report kind. Bounded: past [`SeriesCache::MAX`] kinds it starts over (the
/// families keep every series; only the shortcut to them is forgotten).
#[derive(Debug, Default)]
pub(super) struct SeriesCache {
    hasher: RandomState,
    cache: Mutex<Cache>,
}

#[derive(Debug, Default)]
struct Cache {
    /// The kind of the last report: most reports are of the same kind as the one before (one
    /// model, one backend), and comparing with it costs less than hashing the labels.
    last: Option<Arc<Entry>>,
    /// Entries by the hash of their key. The key is already a `RandomState` hash (a report's
    /// model names are the client's), so a fast hasher is enough to place it.
    map: HashMap<u64, Vec<Arc<Entry>>, FastState>,
}

#[derive(Debug)]
struct Entry {
    key: SeriesKey,
    series: Arc<Series>,
}

impl SeriesCache {
    const MAX: usize = 10_000;

    /// The series of `r`'s kind (`identity_label`: identity and team are labels).
    pub fn get(&self, r: &UsageReport, identity_label: bool) -> Arc<Series> {
        let identity = r
            .identity
            .as_ref()
            .filter(|_| identity_label)
            .map(|i| (&*i.name, i.team.as_deref()));
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = &cache.last
            && e.key.matches(r, identity)
        {
            return e.series.clone();
        }
        let hash = self.hasher.hash_one((
            r.route,
            r.status.as_u16(),
            r.backend.as_deref(),
            r.provider.as_deref(),
            r.request_model.as_deref(),
            r.response_model.as_deref(),
            identity,
        ));
        let found = cache
            .map
            .get(&hash)
            .and_then(|v| v.iter().find(|e| e.key.matches(r, identity)).cloned());
        let entry = match found {
            Some(e) => e,
            None => {
                if cache.map.len() >= Self::MAX {
                    cache.map.clear();
                }
                let e = Arc::new(Entry {
                    key: SeriesKey {
                        route: r.route,
                        status: r.status.as_u16(),
                        backend: r.backend.clone(),
                        provider: r.provider.clone(),
                        request_model: r.request_model.clone(),
                        response_model: r.response_model.clone(),
                        identity: identity.map(|(n, t)| (n.to_owned(), t.map(str::to_owned))),
                    },
                    series: Arc::new(Series::default()),
                });
                cache.map.entry(hash).or_default().push(e.clone());
                e
            }
        };
        let series = entry.series.clone();
        cache.last = Some(entry);
        series
    }
}
