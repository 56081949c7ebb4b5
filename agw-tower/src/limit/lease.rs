//! Leases: parts of a shared rate limit charged in the store ahead of use and spent here, so
//! that a busy replica does not make a round trip for every request.
//!
//! A request's rate counters (requests and tokens per minute) are checked and charged in Redis
//! by a script. When the script admits a request it may also charge a *grant* for the next
//! ones: at most what this replica asked for (its recent use, [`Lease::target`]) and at most a
//! sixteenth of what the limit leaves after the request, so that the grants of every replica
//! together never take more than the limit holds, and a limit close to its end grants nothing
//! (the last requests of a minute are each checked in Redis, exactly as without leases). The
//! next requests here are charged against the grant without a round trip, while it lasts.
//!
//! What a replica holds unused counts as used for the other replicas until the minute ends
//! (counters are per minute) or [`Leases::drain`] gives it back (graceful shutdown, tests):
//! at most a sixteenth of the room at each grant, which is why a small limit (`7` per minute)
//! is never leased at all.
//!
//! Budgets (day and month totals) are never leased: their counters are the spend records.

use super::rejection::LimitKind;
use super::store::{Add, Check, CounterKey};
use crate::hash::FastState;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A lease emptied sooner than this after its last grant asks for twice as much next time.
const GROW_WITHIN: Duration = Duration::from_millis(100);

/// A lease that lasted longer than this asks for half as much next time.
const SHRINK_AFTER: Duration = Duration::from_secs(1);

/// The most a lease asks for, in requests (their share of a tokens limit is scaled by the
/// request's own amount): at 20,000 requests a second, about 50 ms of traffic.
const MOST_REQUESTS: u64 = 1024;

/// Whether `check` is of a kind that can be leased: a per-minute rate.
pub(super) fn leasable(check: &Check) -> bool {
    matches!(check.key.kind, LimitKind::Requests | LimitKind::Tokens)
}

/// One counter's lease.
#[derive(Debug)]
struct Lease {
    /// Units charged in the store and not yet used here.
    left: u64,
    /// The counter's value in the store when it was last charged from here (it includes
    /// `left`): what this replica reports as the counter's value is `seen - left`.
    seen: u64,
    /// What the next grant asks for.
    target: u64,
    /// When the last grant came.
    granted: Instant,
}

/// One check as sent to the store: what it still needs there and the grant it asks for.
#[derive(Debug, Clone)]
pub(super) struct Ask {
    /// The check, `add` reduced by what the lease here covered.
    pub check: Check,
    /// The grant asked for beyond `check.add` (0: none, and never for a budget).
    pub want: u64,
}

/// Where one of a request's checks was settled.
#[derive(Debug, Clone)]
enum Slot {
    /// Covered by the lease of `key` here: `taken` units, and the counter's value as reported.
    Local {
        key: CounterKey,
        taken: u64,
        value: u64,
    },
    /// Sent to the store as `asks[index]`, `taken` units of it covered by the lease here.
    Sent { index: usize, taken: u64 },
}

/// What [`Leases::take`] decided for a request.
#[derive(Debug)]
pub(super) enum Plan {
    /// Every check was covered here: the counters' values, as an admission reports them.
    Local(Vec<u64>),
    /// Some checks go to the store.
    Remote(Remote),
}

/// A request whose checks go (in part) to the store.
#[derive(Debug)]
pub(super) struct Remote {
    /// The request's checks, as asked.
    checks: Vec<Check>,
    /// The checks the store sees.
    pub asks: Vec<Ask>,
    /// Each of the request's checks, in order.
    slots: Vec<Slot>,
}

impl Remote {
    /// For a check the store refused at `index` of the asks: that check's index among the
    /// request's.
    pub fn original_index(&self, index: usize) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| matches!(s, Slot::Sent { index: i, .. } if *i == index))
    }
}

/// Takes `checks` from the leases in `map` if they cover every one: the counters' values, as
/// an admission reports them.
fn covered(map: &mut HashMap<CounterKey, Lease, FastState>, checks: &[Check]) -> Option<Vec<u64>> {
    let all = checks
        .iter()
        .all(|c| leasable(c) && map.get(&c.key).is_some_and(|l| l.left >= c.add.max(1)));
    all.then(|| {
        checks
            .iter()
            .map(|c| {
                let l = map.get_mut(&c.key).expect("checked above");
                l.left -= c.add;
                l.seen.saturating_sub(l.left)
            })
            .collect()
    })
}

/// The leases of one store (one replica), keyed by counter.
#[derive(Debug, Default)]
pub(super) struct Leases {
    map: Mutex<HashMap<CounterKey, Lease, FastState>>,
}

impl Leases {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CounterKey, Lease, FastState>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Covers what it can of `checks` from the leases here: all of them (no round trip), or
    /// the asks for the store, with what each lease covered already taken from it (given back
    /// by [`Leases::refused`] if the store refuses).
    pub fn take(&self, checks: Vec<Check>) -> Plan {
        let mut map = self.lock();
        // Everything covered: the common case of a busy replica.
        if let Some(values) = covered(&mut map, &checks) {
            return Plan::Local(values);
        }
        let original = checks.clone();
        let mut asks = Vec::with_capacity(checks.len());
        let mut slots = Vec::with_capacity(checks.len());
        for mut check in checks {
            if !leasable(&check) {
                slots.push(Slot::Sent {
                    index: asks.len(),
                    taken: 0,
                });
                asks.push(Ask { check, want: 0 });
                continue;
            }
            let lease = map.get_mut(&check.key);
            let have = lease.as_ref().map_or(0, |l| l.left);
            if let Some(l) = lease.filter(|_| have >= check.add.max(1)) {
                l.left -= check.add;
                slots.push(Slot::Local {
                    key: check.key.clone(),
                    taken: check.add,
                    value: l.seen.saturating_sub(l.left),
                });
                continue;
            }
            // Not enough here: what is left goes to this request, the rest to the store,
            // with a grant for the next requests.
            let taken = have.min(check.add);
            let want = match map.get_mut(&check.key) {
                Some(l) => {
                    l.left -= taken;
                    l.target
                }
                None => check.add.max(1),
            };
            check.add -= taken;
            slots.push(Slot::Sent {
                index: asks.len(),
                taken,
            });
            asks.push(Ask { check, want });
        }
        Plan::Remote(Remote {
            checks: original,
            asks,
            slots,
        })
    }

    /// The store refused `remote` (or failed): what the leases here covered goes back to
    /// them, and the request is admitted if they now cover it whole — grants charged for other
    /// requests of the same batch (concluded first, see [`Leases::admitted`]) are this
    /// replica's to use, and a burst must not be refused while they sit unused.
    pub fn retry(&self, remote: &Remote) -> Option<Vec<u64>> {
        self.refused(remote);
        covered(&mut self.lock(), &remote.checks)
    }

    /// The store admitted `remote`'s asks: `answers` holds each ask's counter value and the
    /// grant charged with it. Returns every check's value, as an admission reports them.
    pub fn admitted(&self, remote: &Remote, answers: &[(u64, u64)]) -> Vec<u64> {
        let now = Instant::now();
        let mut map = self.lock();
        let mut purged = false;
        remote
            .slots
            .iter()
            .map(|slot| match slot {
                Slot::Local { value, .. } => *value,
                &Slot::Sent { index, .. } => {
                    let ask = &remote.asks[index];
                    let (value, grant) = answers.get(index).copied().unwrap_or_default();
                    if ask.want == 0 {
                        return value;
                    }
                    if !purged && !map.contains_key(&ask.check.key) {
                        // A new minute's counter: the leases of past minutes are worth nothing.
                        purged = true;
                        let minute = ask.check.key.period;
                        map.retain(|k, _| k.period >= minute);
                    }
                    let most = MOST_REQUESTS.saturating_mul(ask.check.add.max(1));
                    let l = map.entry(ask.check.key.clone()).or_insert(Lease {
                        left: 0,
                        seen: value,
                        target: ask.want,
                        granted: now,
                    });
                    let lasted = now.saturating_duration_since(l.granted);
                    if lasted < GROW_WITHIN {
                        l.target = l.target.saturating_mul(2).min(most);
                    } else if lasted > SHRINK_AFTER {
                        l.target = (l.target / 2).max(1);
                    }
                    l.granted = now;
                    l.left = l.left.saturating_add(grant);
                    l.seen = value;
                    value.saturating_sub(l.left)
                }
            })
            .collect()
    }

    /// The store refused `remote` (or failed): what the leases here covered goes back to them.
    pub fn refused(&self, remote: &Remote) {
        let mut map = self.lock();
        for slot in &remote.slots {
            let (key, taken) = match slot {
                Slot::Local { key, taken, .. } => (key, *taken),
                &Slot::Sent { index, taken } => (&remote.asks[index].check.key, taken),
            };
            if taken > 0
                && let Some(l) = map.get_mut(key)
            {
                l.left = l.left.saturating_add(taken);
            }
        }
    }

    /// Settles `adds` against the leases where it can: a counter leased here takes a
    /// correction from its lease (tokens used beyond the estimate) or into it (tokens given
    /// back, up to twice its target; the rest goes to the store). What the store must still
    /// apply stays in `adds`.
    pub fn absorb(&self, adds: &mut Vec<Add>) {
        let mut map = self.lock();
        if map.is_empty() {
            return;
        }
        adds.retain_mut(|a| {
            let Some(l) = map.get_mut(&a.key) else {
                return true;
            };
            if a.delta >= 0 {
                let used = (a.delta as u64).min(l.left);
                l.left -= used;
                a.delta -= used as i64;
            } else {
                let back = a.delta.unsigned_abs();
                let room = l.target.saturating_mul(2).saturating_sub(l.left);
                let kept = back.min(room);
                l.left += kept;
                a.delta += kept as i64;
            }
            a.delta != 0
        });
    }

    /// Empties every lease, returning what the store should take back (negative adds).
    pub fn drain(&self) -> Vec<Add> {
        self.lock()
            .drain()
            .filter(|(_, l)| l.left > 0)
            .map(|(key, l)| Add {
                key,
                delta: -(l.left.min(i64::MAX as u64) as i64),
                ttl: super::limiter::MINUTE_TTL,
            })
            .collect()
    }

    /// The units held unused here for `key` (tests, reports).
    pub fn held(&self, key: &CounterKey) -> u64 {
        self.lock().get(key).map_or(0, |l| l.left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limit::Scope;
    use std::sync::Arc;

    fn key(kind: LimitKind, period: u64) -> CounterKey {
        CounterKey {
            prefix: Arc::from("agw"),
            scope: Scope::Key("alice".into()),
            kind,
            period,
        }
    }

    fn check(kind: LimitKind, add: u64) -> Check {
        Check {
            key: key(kind, 7),
            limit: 1000,
            add,
            ttl: 120,
        }
    }

    fn remote(plan: Plan) -> Remote {
        match plan {
            Plan::Remote(r) => r,
            Plan::Local(v) => panic!("covered here: {v:?}"),
        }
    }

    #[test]
    fn a_grant_covers_the_next_requests_and_values_count_what_was_admitted() {
        let leases = Leases::default();
        let r = remote(leases.take(vec![check(LimitKind::Requests, 1)]));
        assert_eq!((r.asks[0].check.add, r.asks[0].want), (1, 1));
        // Redis charged 1 + a grant of 3: the counter reads 4, one request admitted.
        assert_eq!(leases.admitted(&r, &[(4, 3)]), vec![1]);
        for n in 2..=4 {
            match leases.take(vec![check(LimitKind::Requests, 1)]) {
                Plan::Local(v) => assert_eq!(v, vec![n]),
                Plan::Remote(_) => panic!("request {n} should be covered"),
            }
        }
        // Spent: the next one asks again, for more (the grant lasted no time at all).
        let r = remote(leases.take(vec![check(LimitKind::Requests, 1)]));
        assert_eq!(r.asks[0].check.add, 1);
        assert!(r.asks[0].want >= 2, "{:?}", r.asks[0]);
    }

    #[test]
    fn budgets_are_never_leased_and_a_partial_lease_is_used_first() {
        let leases = Leases::default();
        let tokens = check(LimitKind::Tokens, 100);
        let r = remote(leases.take(vec![tokens.clone()]));
        leases.admitted(&r, &[(150, 50)]);
        assert_eq!(leases.held(&tokens.key), 50);
        let budget = Check {
            key: key(LimitKind::UsdPerDay, 20261130),
            ..check(LimitKind::UsdPerDay, 0)
        };
        let r = remote(leases.take(vec![tokens.clone(), budget]));
        // 50 of the 100 tokens from the lease, 50 from Redis (with a grant); the budget as is.
        assert_eq!((r.asks[0].check.add, r.asks[1].check.add), (50, 0));
        assert!(r.asks[0].want > 0);
        assert_eq!(r.asks[1].want, 0, "a budget asks for no grant");
        assert_eq!(leases.held(&tokens.key), 0);
        // The budget refuses: the 50 go back to the lease.
        leases.refused(&r);
        assert_eq!(leases.held(&tokens.key), 50);
        assert_eq!(r.original_index(1), Some(1));
    }

    #[test]
    fn a_refusal_gives_back_what_covered_checks_took() {
        let leases = Leases::default();
        let rpm = check(LimitKind::Requests, 1);
        let tpm = check(LimitKind::Tokens, 100);
        let r = remote(leases.take(vec![rpm.clone()]));
        leases.admitted(&r, &[(5, 4)]);
        // The request's rate is covered here, its tokens are not.
        let r = remote(leases.take(vec![rpm.clone(), tpm.clone()]));
        assert_eq!(r.asks.len(), 1, "only the tokens go to Redis");
        assert_eq!(leases.held(&rpm.key), 3);
        assert_eq!(r.original_index(0), Some(1));
        leases.refused(&r);
        assert_eq!(leases.held(&rpm.key), 4);
    }

    #[test]
    fn corrections_are_settled_against_the_lease_and_the_rest_goes_to_the_store() {
        let leases = Leases::default();
        let tpm = check(LimitKind::Tokens, 100);
        let r = remote(leases.take(vec![tpm.clone()]));
        leases.admitted(&r, &[(300, 200)]);
        let target = leases.lock()[&tpm.key].target;
        let add = |delta| Add {
            key: tpm.key.clone(),
            delta,
            ttl: 120,
        };
        // Used 30 more than held: from the lease.
        let mut adds = vec![add(30)];
        leases.absorb(&mut adds);
        assert!(adds.is_empty());
        assert_eq!(leases.held(&tpm.key), 170);
        // Given back: into the lease up to twice its target, the rest to Redis.
        let mut adds = vec![add(-1_000_000), add(5000)];
        leases.absorb(&mut adds);
        let kept = 2 * target - 170;
        assert_eq!(adds.len(), 2);
        assert_eq!(adds[0].delta, -1_000_000 + kept as i64);
        // The second add takes what the first put in the lease.
        assert_eq!(adds[1].delta, 5000 - (2 * target) as i64);
        assert_eq!(leases.held(&tpm.key), 0);
        // Other counters are untouched.
        let mut adds = vec![Add {
            key: key(LimitKind::TokensPerDay, 20261130),
            delta: -5,
            ttl: 1,
        }];
        leases.absorb(&mut adds);
        assert_eq!(adds[0].delta, -5);
    }

    #[test]
    fn a_new_minute_drops_the_past_ones_and_drain_gives_everything_back() {
        let leases = Leases::default();
        let old = check(LimitKind::Requests, 1);
        let r = remote(leases.take(vec![old.clone()]));
        leases.admitted(&r, &[(10, 9)]);
        let new = Check {
            key: key(LimitKind::Requests, 8),
            ..old.clone()
        };
        let r = remote(leases.take(vec![new.clone()]));
        leases.admitted(&r, &[(3, 2)]);
        assert_eq!(leases.held(&old.key), 0, "last minute's lease is gone");
        let back = leases.drain();
        assert_eq!(back.len(), 1);
        assert_eq!((&back[0].key, back[0].delta), (&new.key, -2));
        assert!(leases.drain().is_empty());
    }
}
