//! The leader's assignor, after Connect's `IncrementalCooperativeAssignor`: members keep what
//! they run unless it was deleted, duplicated or is surplus to an even spread; new and lost
//! work goes to the least-loaded members. Connectors and tasks are balanced separately.
//! Surplus is revoked in one round and handed out in the next, so nothing runs twice.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::protocol::Work;

/// What the leader remembers between rebalances.
#[derive(Debug, Default)]
pub struct AssignorState {
    /// Work assigned after the last round, for `scheduled.rebalance.max.delay.ms`.
    previous: BTreeSet<Work>,
    /// When held lost work is handed out.
    scheduled: Option<Instant>,
    /// Work handed to a member that its metadata does not show yet, by member, with when
    /// it was handed over. A member reports what it runs only when it joins, and a broker
    /// may complete a round before every member has rejoined (Tansu 0.6 does: the leader
    /// gets each follower's metadata from its last join), so a report can predate the
    /// member's latest assignment. Such work stays the member's for `grace`, so it is not
    /// handed to a second member; after that it counts as lost (the member never got it).
    in_flight: BTreeMap<String, BTreeMap<Work, Instant>>,
    grace: Duration,
    /// When held in-flight work is next due to be let go.
    recheck: Option<Instant>,
}

impl AssignorState {
    /// `grace`: how long work handed to a member may go unreported (the session timeout:
    /// a member that has not rejoined by then has left).
    pub fn with_grace(grace: Duration) -> AssignorState {
        AssignorState {
            grace,
            ..AssignorState::default()
        }
    }

    /// How long until held in-flight work is due to be let go, if any is held: the leader
    /// rebalances again then, so work a member never received does not wait for another
    /// membership change.
    pub fn recheck_in(&self, now: Instant) -> Option<Duration> {
        self.recheck.map(|r| r.saturating_duration_since(now))
    }
}

/// One member's new assignment: work added, work revoked, and when to rejoin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberAssignment {
    pub assigned: BTreeSet<Work>,
    pub revoked: BTreeSet<Work>,
    pub delay_ms: i32,
}

fn is_task(w: &Work) -> bool {
    matches!(w, Work::Task(..))
}

/// Assigns `configured` work over `members` (member id → what it runs now).
/// `max_delay` is `scheduled.rebalance.max.delay.ms`: work lost with a vanished member is
/// held that long for it to come back (zero hands it out at once).
pub fn assign(
    state: &mut AssignorState,
    members: &BTreeMap<String, BTreeSet<Work>>,
    configured: &BTreeSet<Work>,
    max_delay: Duration,
    now: Instant,
) -> BTreeMap<String, MemberAssignment> {
    let mut out: BTreeMap<String, MemberAssignment> = members
        .keys()
        .map(|m| (m.clone(), MemberAssignment::default()))
        .collect();
    // Keep what is configured and not already kept by another member.
    let mut keep: BTreeMap<&str, BTreeSet<Work>> = BTreeMap::new();
    let mut running = BTreeSet::new();
    for (member, active) in members {
        let kept = keep.entry(member).or_default();
        for w in active {
            if configured.contains(w) && running.insert(w.clone()) {
                kept.insert(w.clone());
            } else if let Some(a) = out.get_mut(member) {
                a.revoked.insert(w.clone());
            }
        }
    }
    // Then what was handed to a member and is not reported yet (see `in_flight`), unless
    // another member reports running it: then it is revoked, in case it runs after all.
    let grace = state.grace;
    let mut recheck: Option<Instant> = None;
    state.in_flight.retain(|m, _| members.contains_key(m));
    for (member, flight) in &mut state.in_flight {
        let active = &members[member];
        flight.retain(|w, since| {
            !active.contains(w) && configured.contains(w) && now < *since + grace
        });
        let (Some(kept), Some(a)) = (keep.get_mut(member.as_str()), out.get_mut(member)) else {
            continue;
        };
        flight.retain(|w, since| {
            if running.insert(w.clone()) {
                kept.insert(w.clone());
                let due = *since + grace;
                recheck = Some(recheck.map_or(due, |r| r.min(due)));
                true
            } else {
                a.revoked.insert(w.clone());
                false
            }
        });
    }
    state.recheck = recheck;
    // Work nobody runs: new, or lost with a member that vanished.
    let mut unassigned: BTreeSet<Work> = configured.difference(&running).cloned().collect();
    let lost: BTreeSet<Work> = unassigned
        .iter()
        .filter(|w| state.previous.contains(*w))
        .cloned()
        .collect();
    let mut delay_ms = 0;
    if !lost.is_empty() && !max_delay.is_zero() {
        let due = *state.scheduled.get_or_insert(now + max_delay);
        if now < due {
            for w in &lost {
                unassigned.remove(w);
            }
            delay_ms = due.saturating_duration_since(now).as_millis().max(1) as i32;
        } else {
            state.scheduled = None;
        }
    } else if lost.is_empty() {
        state.scheduled = None;
    }
    if !members.is_empty() {
        for tasks in [false, true] {
            balance(&mut keep, &mut out, &mut unassigned, tasks);
        }
    }
    state.previous = keep.values().flatten().cloned().collect();
    for (member, a) in &out {
        let flight = state.in_flight.entry(member.clone()).or_default();
        for w in &a.revoked {
            flight.remove(w);
        }
        for w in &a.assigned {
            flight.insert(w.clone(), now);
        }
    }
    if delay_ms > 0 {
        // Held work counts as assigned, so it is still "lost" next round.
        state.previous.extend(lost);
        for a in out.values_mut() {
            a.delay_ms = delay_ms;
        }
    }
    out
}

/// Hands `claimed` work back to its member in this round's assignment, unless the round
/// revokes it. Claimed work is what a member's report left out and the status topic says
/// it started recently (the herder's `claim_recently_started`); [`assign`] counts it as
/// that member's, so without this no assignment would name it. A member that runs it
/// already ignores the repeat; one that has stopped it since (its UNASSIGNED status not
/// yet read by this leader) starts it again, instead of it running nowhere until the next
/// rebalance.
pub fn reassign_claimed(
    out: &mut BTreeMap<String, MemberAssignment>,
    claimed: &BTreeMap<String, BTreeSet<Work>>,
) {
    for (member, work) in claimed {
        let Some(a) = out.get_mut(member) else {
            continue;
        };
        for w in work {
            if !a.revoked.contains(w) {
                a.assigned.insert(w.clone());
            }
        }
    }
}

/// Spreads one kind of work (connectors or tasks). Unassigned work goes to the least
/// loaded. When that still leaves a member below an even share's floor (a worker joined),
/// members above the floor revoke the difference, most loaded first; it is handed out in
/// the next round, once they have stopped it.
fn balance(
    keep: &mut BTreeMap<&str, BTreeSet<Work>>,
    out: &mut BTreeMap<String, MemberAssignment>,
    unassigned: &mut BTreeSet<Work>,
    tasks: bool,
) {
    let load = |set: &BTreeSet<Work>| set.iter().filter(|w| is_task(w) == tasks).count();
    let pending: Vec<Work> = unassigned
        .iter()
        .filter(|w| is_task(w) == tasks)
        .cloned()
        .collect();
    let total = keep.values().map(load).sum::<usize>() + pending.len();
    let floor = total / keep.len();
    for w in pending {
        unassigned.remove(&w);
        let Some((member, set)) = keep.iter_mut().min_by_key(|(m, s)| (load(s), **m)) else {
            return;
        };
        set.insert(w.clone());
        if let Some(a) = out.get_mut(*member) {
            a.assigned.insert(w);
        }
    }
    let mut deficit: usize = keep.values().map(|s| floor.saturating_sub(load(s))).sum();
    while deficit > 0 {
        let Some((member, set)) = keep
            .iter_mut()
            .filter(|(_, s)| load(s) > floor)
            .max_by_key(|(m, s)| (load(s), std::cmp::Reverse(**m)))
        else {
            break;
        };
        let Some(victim) = set.iter().rev().find(|w| is_task(w) == tasks).cloned() else {
            break;
        };
        set.remove(&victim);
        if let Some(a) = out.get_mut(*member) {
            a.revoked.insert(victim);
        }
        deficit -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connector(name: &str, tasks: u32) -> Vec<Work> {
        let mut v = vec![Work::Connector(name.into())];
        v.extend((0..tasks).map(|t| Work::Task(name.into(), t)));
        v
    }

    fn configured(spec: &[(&str, u32)]) -> BTreeSet<Work> {
        spec.iter().flat_map(|(n, t)| connector(n, *t)).collect()
    }

    /// Applies a round's result to what each member runs.
    fn apply(
        members: &mut BTreeMap<String, BTreeSet<Work>>,
        result: &BTreeMap<String, MemberAssignment>,
    ) {
        for (m, a) in result {
            let set = members.entry(m.clone()).or_default();
            for w in &a.revoked {
                set.remove(w);
            }
            set.extend(a.assigned.iter().cloned());
        }
    }

    fn tasks_of(set: &BTreeSet<Work>) -> usize {
        set.iter().filter(|w| is_task(w)).count()
    }

    fn members(names: &[&str]) -> BTreeMap<String, BTreeSet<Work>> {
        names
            .iter()
            .map(|n| ((*n).to_owned(), BTreeSet::new()))
            .collect()
    }

    #[test]
    fn claimed_work_is_handed_back_to_its_member_unless_revoked() {
        let mut state = AssignorState::default();
        let work = configured(&[("x", 4)]);
        let now = Instant::now();
        let mut ms = members(&["a", "b"]);
        let first = assign(&mut state, &ms, &work, Duration::ZERO, now);
        apply(&mut ms, &first);
        // "a" has stopped one of its tasks (it rejoined after its session lapsed) and
        // reports without it, but the leader still reads the task's RUNNING status by "a".
        let stopped = ms["a"]
            .iter()
            .find(|w| is_task(w))
            .cloned()
            .expect("a task on a");
        let mut claimed = BTreeMap::new();
        claimed.insert("a".to_owned(), BTreeSet::from([stopped.clone()]));
        let mut r = assign(&mut state, &ms, &work, Duration::ZERO, now);
        assert!(
            r.values().all(|a| !a.assigned.contains(&stopped)),
            "counted as a's, so assign alone hands it to no one"
        );
        reassign_claimed(&mut r, &claimed);
        assert!(r["a"].assigned.contains(&stopped));
        assert!(!r["b"].assigned.contains(&stopped));

        // Work the round revokes from its member is not handed back.
        let mut r = assign(&mut state, &ms, &work, Duration::ZERO, now);
        r.get_mut("a").expect("a").revoked.insert(stopped.clone());
        reassign_claimed(&mut r, &claimed);
        assert!(!r["a"].assigned.contains(&stopped));
        // Members not in the round are skipped.
        claimed.insert("gone".to_owned(), BTreeSet::from([stopped]));
        reassign_claimed(&mut r, &claimed);
        assert!(!r.contains_key("gone"));
    }

    #[test]
    fn fresh_work_is_spread_evenly() {
        let mut state = AssignorState::default();
        let mut ms = members(&["a", "b", "c"]);
        let work = configured(&[("x", 4), ("y", 3)]);
        let r = assign(&mut state, &ms, &work, Duration::ZERO, Instant::now());
        apply(&mut ms, &r);
        let loads: Vec<usize> = ms.values().map(tasks_of).collect();
        assert!(
            loads.iter().max().expect("max") - loads.iter().min().expect("min") <= 1,
            "{loads:?}"
        );
        let all: BTreeSet<Work> = ms.values().flatten().cloned().collect();
        assert_eq!(all, work);
        assert!(r.values().all(|a| a.revoked.is_empty()));
    }

    #[test]
    fn a_joining_member_gets_load_in_two_rounds_without_moving_the_rest() {
        let mut state = AssignorState::default();
        let mut ms = members(&["a", "b"]);
        let work = configured(&[("x", 6)]);
        let now = Instant::now();
        let r = assign(&mut state, &ms, &work, Duration::ZERO, now);
        apply(&mut ms, &r);
        let before = ms.clone();
        ms.insert("c".into(), BTreeSet::new());
        let first = assign(&mut state, &ms, &work, Duration::ZERO, now);
        assert!(
            first["c"].assigned.is_empty(),
            "revoked work is handed out next round"
        );
        let revoked: usize = first.values().map(|a| a.revoked.len()).sum();
        assert_eq!(revoked, 2);
        apply(&mut ms, &first);
        let second = assign(&mut state, &ms, &work, Duration::ZERO, now);
        assert!(second.values().all(|a| a.revoked.is_empty()));
        apply(&mut ms, &second);
        assert_eq!(ms.values().map(tasks_of).collect::<Vec<_>>(), [2, 2, 2]);
        // Whatever a and b kept, they never stopped.
        for m in ["a", "b"] {
            let kept = before[m].intersection(&ms[m]).count();
            assert!(
                kept >= before[m].len() - 1,
                "{m} lost more than its surplus"
            );
        }
    }

    #[test]
    fn lost_work_moves_at_once_or_after_the_delay() {
        let work = configured(&[("x", 4)]);
        let now = Instant::now();
        for delay in [Duration::ZERO, Duration::from_secs(5)] {
            let mut state = AssignorState::default();
            let mut ms = members(&["a", "b"]);
            let r = assign(&mut state, &ms, &work, delay, now);
            apply(&mut ms, &r);
            ms.remove("b");
            let r = assign(&mut state, &ms, &work, delay, now);
            if delay.is_zero() {
                apply(&mut ms, &r);
                assert_eq!(ms["a"], work);
                continue;
            }
            assert!(r["a"].assigned.is_empty(), "held for the delay");
            assert_eq!(r["a"].delay_ms, 5000);
            let later = assign(&mut state, &ms, &work, delay, now + delay);
            apply(&mut ms, &later);
            assert_eq!(ms["a"], work);
        }
    }

    #[test]
    fn work_handed_out_is_not_handed_out_again_while_its_member_has_not_reported_it() {
        let grace = Duration::from_secs(6);
        let mut state = AssignorState::with_grace(grace);
        let work = configured(&[("x", 6)]);
        let now = Instant::now();
        let mut ms = members(&["a", "b", "c"]);
        let r = assign(&mut state, &ms, &work, Duration::ZERO, now);
        apply(&mut ms, &r);
        // c leaves; a and b get its share, but b's metadata is still from before (it has
        // not rejoined) while a, the leader, rejoined at once.
        let b_before = ms["b"].clone();
        ms.remove("c");
        let r = assign(&mut state, &ms, &work, Duration::ZERO, now);
        apply(&mut ms, &r);
        let b_now = ms["b"].clone();
        assert!(b_now.len() > b_before.len(), "b got some of c's work");
        // c comes back; b is still reported as before.
        ms.insert("c".into(), BTreeSet::new());
        let mut reported = ms.clone();
        reported.insert("b".into(), b_before.clone());
        let later = now + Duration::from_secs(1);
        let r = assign(&mut state, &reported, &work, Duration::ZERO, later);
        for w in b_now.difference(&b_before) {
            assert!(
                r.iter().all(|(m, a)| m == "b" || !a.assigned.contains(w)),
                "{w:?} runs on b and was handed to another member: {r:?}"
            );
        }
        assert_eq!(
            state.recheck_in(later),
            Some(grace - Duration::from_secs(1)),
            "the leader rebalances when the hold ends"
        );
        // A member that never got its work: after the grace, the work moves.
        let r = assign(&mut state, &reported, &work, Duration::ZERO, now + grace);
        let handed: BTreeSet<&Work> = r.values().flat_map(|a| &a.assigned).collect();
        assert!(
            b_now.difference(&b_before).all(|w| handed.contains(w)),
            "after the grace b's unreported work is handed out: {r:?}"
        );
    }

    #[test]
    fn deleted_and_duplicated_work_is_revoked() {
        let mut state = AssignorState::default();
        let mut ms = members(&["a", "b"]);
        let x = connector("x", 1);
        ms.get_mut("a").expect("a").extend(x.iter().cloned());
        ms.get_mut("b").expect("b").insert(x[1].clone());
        ms.get_mut("b")
            .expect("b")
            .insert(Work::Connector("gone".into()));
        let r = assign(
            &mut state,
            &ms,
            &x.iter().cloned().collect(),
            Duration::ZERO,
            Instant::now(),
        );
        assert!(r["b"].revoked.contains(&x[1]));
        assert!(r["b"].revoked.contains(&Work::Connector("gone".into())));
        assert!(r["a"].revoked.is_empty());
    }
}
