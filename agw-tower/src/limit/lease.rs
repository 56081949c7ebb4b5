//! Leases: parts of a shared rate limit charged in the store ahead of use and spent here, so
//! that a busy replica does not make a round trip for every request.
//!
//! A request's rate counters (requests and tokens per minute) are checked and charged in Redis
//! by a script. When the script admits a request it may also charge a *grant* for the next
//! ones: at most what this replica asked for ([`Lease::target`], which grows while grants run
//! out quickly) and at most a sixteenth of what the limit leaves after the request. Only one
//! request per counter asks at a time, so a burst cannot take the room sixteenth by sixteenth;
//! a limit with less than 16 left grants nothing, so the last requests of a minute, and every
//! request of a small limit (`10` per minute), are checked in Redis one by one, exactly as
//! without leases. The next requests here are charged against the grant without a round trip,
//! while it lasts.
//!
//! Every unit spent here was charged in Redis first: the replicas together never admit more
//! than the limit (apart from what failing open admits while Redis does not answer in time;
//! what such a request was charged stays used, never handed to another). What a replica
//! holds unused counts as used for the others until its minute ends (counters are per
//! minute) or [`Leases::drain`] gives it back (graceful shutdown).
//! Tokens a request gives back after its response go to Redis, never into a lease: a lease
//! holds only what a grant charged within the limit.
//!
//! Budgets (day and month totals) are never leased: their counters are the spend records.

use super::rejection::LimitKind;
use super::store::{Add, Check, CounterKey};
use crate::hash::FastState;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A grant used up sooner than this asks for twice as much next time.
const GROW_WITHIN: Duration = Duration::from_millis(100);

/// A grant that lasted longer than this asks for half as much next time.
const SHRINK_AFTER: Duration = Duration::from_secs(1);

/// The most a lease asks for, in requests (for tokens, in multiples of the request's own
/// amount): at 20,000 requests a second, about 50 ms of traffic.
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
    /// The counter's value in the store when last seen from here (it includes `left`): what
    /// this replica reports as the counter's value is `seen - left`.
    seen: u64,
    /// What the next grant asks for.
    target: u64,
    /// Units asked for by a request now at the store (one at a time).
    asking: u64,
    /// When the last grant came.
    granted: Instant,
}

/// The leases of one store, and the latest minute they were taken in.
#[derive(Debug, Default)]
struct Map {
    minute: u64,
    leases: HashMap<CounterKey, Lease, FastState>,
}

impl Map {
    /// The lease of `key`, made (empty) if there is none; a later minute's first lease drops
    /// the past minutes' (worth nothing: their counters are gone).
    fn entry(&mut self, key: &CounterKey, target: u64, now: Instant) -> &mut Lease {
        // Every lease is of a minute up to `minute` (made here): a later one is new.
        if key.period > self.minute {
            self.minute = key.period;
            let minute = self.minute;
            self.leases.retain(|k, _| k.period >= minute);
        }
        self.leases.entry(key.clone()).or_insert(Lease {
            left: 0,
            seen: 0,
            target,
            asking: 0,
            granted: now,
        })
    }
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
#[derive(Debug, Clone, Copy)]
enum Slot {
    /// Covered by the lease here: `taken` units, and the counter's value as reported.
    Local { taken: u64, value: u64 },
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

/// A request whose checks go (in part) to the store. Each must end in exactly one of
/// [`Leases::admitted`], [`Leases::refused`] (or [`Leases::retry`]) and [`Leases::abandoned`].
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

    /// Each check with its slot.
    fn each(&self) -> impl Iterator<Item = (&Check, Slot)> + '_ {
        self.checks.iter().zip(self.slots.iter().copied())
    }
}

/// [`Leases::refused`] under the lock already held.
fn refused_in(map: &mut Map, remote: &Remote) {
    let now = Instant::now();
    for (check, slot) in remote.each() {
        if !leasable(check) {
            continue;
        }
        let (taken, want) = match slot {
            Slot::Local { taken, .. } => (taken, 0),
            Slot::Sent { index, taken } => (taken, remote.asks[index].want),
        };
        if taken == 0 && want == 0 {
            continue;
        }
        // The lease may have been emptied and dropped meanwhile: what was taken from it is
        // still charged, and goes back to it.
        let l = map.entry(&check.key, check.add.max(1), now);
        l.left = l.left.saturating_add(taken);
        l.asking = l.asking.saturating_sub(want);
        if l.left == 0 && l.asking == 0 {
            map.leases.remove(&check.key);
        }
    }
}

/// Takes `checks` from the leases in `map` if they cover every one: the counters' values, as
/// an admission reports them.
fn covered(map: &mut Map, checks: &[Check]) -> Option<Vec<u64>> {
    let all = checks.iter().all(|c| {
        leasable(c)
            && map
                .leases
                .get(&c.key)
                .is_some_and(|l| l.left >= c.add.max(1))
    });
    all.then(|| {
        checks
            .iter()
            .map(|c| {
                let l = map.leases.get_mut(&c.key).expect("checked above");
                l.left -= c.add;
                l.seen.saturating_sub(l.left)
            })
            .collect()
    })
}

/// The leases of one store (one replica), keyed by counter.
#[derive(Debug, Default)]
pub(super) struct Leases {
    map: Mutex<Map>,
}

impl Leases {
    fn lock(&self) -> std::sync::MutexGuard<'_, Map> {
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
        let now = Instant::now();
        let mut asks = Vec::with_capacity(checks.len());
        let mut slots = Vec::with_capacity(checks.len());
        for check in &checks {
            if !leasable(check) {
                slots.push(Slot::Sent {
                    index: asks.len(),
                    taken: 0,
                });
                asks.push(Ask {
                    check: check.clone(),
                    want: 0,
                });
                continue;
            }
            let l = map.entry(&check.key, check.add.max(1), now);
            if l.left >= check.add.max(1) {
                l.left -= check.add;
                slots.push(Slot::Local {
                    taken: check.add,
                    value: l.seen.saturating_sub(l.left),
                });
                continue;
            }
            // Not enough here: what is left goes to this request, the rest to the store,
            // with a grant for the next requests unless one is being asked for already.
            let taken = l.left.min(check.add);
            l.left -= taken;
            let want = l.target.saturating_sub(l.left.saturating_add(l.asking));
            l.asking = l.asking.saturating_add(want);
            slots.push(Slot::Sent {
                index: asks.len(),
                taken,
            });
            let mut check = check.clone();
            check.add -= taken;
            asks.push(Ask { check, want });
        }
        Plan::Remote(Remote {
            checks,
            asks,
            slots,
        })
    }

    /// The store admitted `remote`'s asks: `answers` holds each ask's counter value and the
    /// grant charged with it. Returns every check's value, as an admission reports them.
    pub fn admitted(&self, remote: &Remote, answers: &[(u64, u64)]) -> Vec<u64> {
        let now = Instant::now();
        let mut map = self.lock();
        remote
            .each()
            .map(|(check, slot)| match slot {
                Slot::Local { value, .. } => value,
                Slot::Sent { index, .. } => {
                    let ask = &remote.asks[index];
                    let (value, grant) = answers.get(index).copied().unwrap_or_default();
                    if !leasable(&ask.check) {
                        return value;
                    }
                    // Gone with its minute: the grant is worth nothing.
                    let Some(l) = map.leases.get_mut(&ask.check.key) else {
                        return value;
                    };
                    l.asking = l.asking.saturating_sub(ask.want);
                    if grant > 0 {
                        let most = MOST_REQUESTS.saturating_mul(check.add.max(1));
                        let lasted = now.saturating_duration_since(l.granted);
                        if lasted < GROW_WITHIN {
                            l.target = l.target.saturating_mul(2).min(most);
                        } else if lasted > SHRINK_AFTER {
                            l.target = (l.target / 2).max(1);
                        }
                        l.granted = now;
                        l.left = l.left.saturating_add(grant);
                    }
                    l.seen = value;
                    let reported = value.saturating_sub(l.left);
                    if l.left == 0 && l.asking == 0 {
                        // Nothing held, nothing asked: no entry (a small limit keeps none).
                        map.leases.remove(&ask.check.key);
                    }
                    reported
                }
            })
            .collect()
    }

    /// The store refused `remote`, or failed: what the leases here covered goes back to
    /// them, and its ask for a grant ends (the tests' view of [`Leases::retry`]'s first half).
    #[cfg(test)]
    pub fn refused(&self, remote: &Remote) {
        refused_in(&mut self.lock(), remote);
    }

    /// [`Leases::refused`], then the request is admitted if the leases now cover it whole —
    /// grants charged for other requests of the same batch (concluded first) are this
    /// replica's to use, and a burst must not be refused while they sit unused. Under one
    /// lock: another request cannot take them in between.
    pub fn retry(&self, remote: &Remote) -> Option<Vec<u64>> {
        let mut map = self.lock();
        refused_in(&mut map, remote);
        covered(&mut map, &remote.checks)
    }

    /// Nobody waits for `remote`'s answer any more (its timeout passed), and the limiter may
    /// have admitted it anyway (limits failing open), and its answer is unknown: what it took
    /// and what it was charged stay used — never handed to another request — and its ask for
    /// a grant ends. (One the store admitted is [`Leases::admitted`]: its grants are the
    /// replica's.)
    pub fn abandoned(&self, remote: &Remote) {
        let mut map = self.lock();
        for (check, slot) in remote.each() {
            let Slot::Sent { index, .. } = slot else {
                continue;
            };
            if !leasable(check) {
                continue;
            }
            let ask = &remote.asks[index];
            let Some(l) = map.leases.get_mut(&check.key) else {
                continue;
            };
            l.asking = l.asking.saturating_sub(ask.want);
        }
    }

    /// Settles `adds` against the leases where it can: a counter leased here takes tokens used
    /// beyond the estimate from its lease (units already charged within the limit). Tokens
    /// given back go to the store: a lease never holds more than grants charged. What the
    /// store must still apply stays in `adds`.
    pub fn absorb(&self, adds: &mut Vec<Add>) {
        let mut map = self.lock();
        if map.leases.is_empty() {
            return;
        }
        adds.retain_mut(|a| {
            if a.delta <= 0 {
                return true;
            }
            let Some(l) = map.leases.get_mut(&a.key) else {
                return true;
            };
            let used = (a.delta as u64).min(l.left);
            l.left -= used;
            a.delta -= used as i64;
            a.delta != 0
        });
    }

    /// Empties every lease, returning what the store should take back (negative adds).
    pub fn drain(&self) -> Vec<Add> {
        self.lock()
            .leases
            .drain()
            .filter(|(_, l)| l.left > 0)
            .map(|(key, l)| Add {
                key,
                delta: -(l.left.min(i64::MAX as u64) as i64),
                ttl: super::limiter::MINUTE_TTL,
            })
            .collect()
    }

    /// The units held unused here for `key` (tests).
    #[cfg(test)]
    fn held(&self, key: &CounterKey) -> u64 {
        self.lock().leases.get(key).map_or(0, |l| l.left)
    }

    /// Counters with a lease entry (tests).
    #[cfg(test)]
    fn entries(&self) -> usize {
        self.lock().leases.len()
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
    fn one_request_per_counter_asks_for_a_grant_at_a_time() {
        let leases = Leases::default();
        let first = remote(leases.take(vec![check(LimitKind::Requests, 1)]));
        let second = remote(leases.take(vec![check(LimitKind::Requests, 1)]));
        assert_eq!((first.asks[0].want, second.asks[0].want), (1, 0));
        // The second is answered first, without a grant: the first's ask still stands.
        leases.admitted(&second, &[(1, 0)]);
        let third = remote(leases.take(vec![check(LimitKind::Requests, 1)]));
        assert_eq!(third.asks[0].want, 0);
        leases.admitted(&first, &[(3, 1)]);
        leases.refused(&third);
        // The ask has ended: the next one may ask again (for the grown target, less what is held).
        let l = leases.lock();
        let lease = &l.leases[&check(LimitKind::Requests, 1).key];
        assert_eq!((lease.left, lease.asking), (1, 0));
    }

    #[test]
    fn a_small_limit_keeps_no_lease() {
        let leases = Leases::default();
        for _ in 0..3 {
            let r = remote(leases.take(vec![check(LimitKind::Requests, 1)]));
            // Redis grants nothing: less than 16 of room.
            leases.admitted(&r, &[(5, 0)]);
            assert_eq!(leases.entries(), 0);
        }
        let r = remote(leases.take(vec![check(LimitKind::Requests, 1)]));
        leases.refused(&r);
        assert_eq!(leases.entries(), 0);
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
    fn an_abandoned_admission_keeps_its_grants_and_its_own_units_stay_used() {
        let leases = Leases::default();
        let rpm = check(LimitKind::Requests, 1);
        let r = remote(leases.take(vec![rpm.clone()]));
        leases.admitted(&r, &[(3, 2)]);
        let tpm = check(LimitKind::Tokens, 100);
        let r = remote(leases.take(vec![rpm.clone(), tpm.clone()]));
        assert_eq!(leases.held(&rpm.key), 1);
        // Its caller stopped waiting and may have been admitted anyway (limits failing open):
        // the unit it took and the 100 tokens it was charged are not handed out again; the
        // grant charged with it is the replica's (concluded as admitted, as `deliver` does
        // for a reply nobody waits for).
        leases.admitted(&r, &[(300, 200)]);
        assert_eq!(leases.held(&rpm.key), 1);
        assert_eq!(leases.held(&tpm.key), 200);
        // Without an answer: only its ask ends.
        let r = remote(leases.take(vec![check(LimitKind::Tokens, 1000)]));
        assert_eq!(leases.held(&tpm.key), 0, "the 200 went to this request");
        assert!(leases.lock().leases[&tpm.key].asking > 0);
        leases.abandoned(&r);
        assert_eq!(leases.lock().leases[&tpm.key].asking, 0);
        assert_eq!(leases.held(&tpm.key), 0);
    }

    #[test]
    fn tokens_used_beyond_the_estimate_come_from_the_lease_and_tokens_given_back_do_not_go_in() {
        let leases = Leases::default();
        let tpm = check(LimitKind::Tokens, 100);
        let r = remote(leases.take(vec![tpm.clone()]));
        leases.admitted(&r, &[(300, 200)]);
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
        // More than the lease holds: the rest to Redis.
        let mut adds = vec![add(500)];
        leases.absorb(&mut adds);
        assert_eq!(adds[0].delta, 330);
        assert_eq!(leases.held(&tpm.key), 0);
        // Given back: to Redis, never into the lease (a counter over its limit after an
        // oversized first request must not turn the refund into a lease past the limit).
        let mut adds = vec![add(-1_000_000)];
        leases.absorb(&mut adds);
        assert_eq!(adds[0].delta, -1_000_000);
        assert_eq!(leases.held(&tpm.key), 0);
        // Other counters are untouched.
        let mut adds = vec![Add {
            key: key(LimitKind::TokensPerDay, 20261130),
            delta: 5,
            ttl: 1,
        }];
        leases.absorb(&mut adds);
        assert_eq!(adds[0].delta, 5);
    }

    #[test]
    fn a_later_minute_drops_the_past_ones_and_drain_gives_everything_back() {
        let leases = Leases::default();
        let old = check(LimitKind::Requests, 1);
        let r = remote(leases.take(vec![old.clone()]));
        leases.admitted(&r, &[(10, 9)]);
        let other = Check {
            key: CounterKey {
                scope: Scope::Key("bob".into()),
                ..old.key.clone()
            },
            ..old.clone()
        };
        let r = remote(leases.take(vec![other.clone()]));
        leases.admitted(&r, &[(10, 9)]);
        assert_eq!(
            leases.held(&old.key),
            9,
            "another key of the same minute drops nothing"
        );
        let new = Check {
            key: key(LimitKind::Requests, 8),
            ..old.clone()
        };
        let r = remote(leases.take(vec![new.clone()]));
        leases.admitted(&r, &[(3, 2)]);
        assert_eq!(leases.held(&old.key), 0, "last minute's lease is gone");
        assert_eq!(leases.entries(), 1);
        let back = leases.drain();
        assert_eq!(back.len(), 1);
        assert_eq!((&back[0].key, back[0].delta), (&new.key, -2));
        assert!(leases.drain().is_empty());
    }
}
