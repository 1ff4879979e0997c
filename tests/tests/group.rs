//! Our group-protocol client against the real broker at `KAFKA_BOOTSTRAP`: two members with
//! protocol type `connect` form a group, the leader's assignment reaches both, and a member
//! that leaves or stops heartbeating is dropped so the other rebalances alone.

use std::time::{Duration, Instant};

use wasmconnect::herder::distributed::group::{GroupMember, GroupSettings, Joined};
use wasmconnect::herder::distributed::protocol::{Assignment, PROTOCOL_TYPE, WorkerMetadata};
use wasmconnect_e2e::{kafka, unique};

fn member(group: &str, name: &str, session: Duration) -> GroupMember {
    GroupMember::new(
        &kafka::bootstrap(),
        PROTOCOL_TYPE,
        GroupSettings {
            group_id: group.to_owned(),
            client_id: name.to_owned(),
            session_timeout: session,
            rebalance_timeout: Duration::from_secs(10),
            heartbeat_interval: Duration::from_millis(500),
            request_timeout: Duration::from_secs(10),
        },
    )
}

fn metadata(url: &str) -> Vec<(&'static str, Vec<u8>)> {
    let m = WorkerMetadata {
        url: url.to_owned(),
        config_offset: 3,
        allocation: None,
    };
    vec![("sessioned", m.encode(2)), ("default", m.encode(0))]
}

/// The leader assigns every member an assignment naming its URL.
fn assignments(joined: &Joined) -> Vec<(String, Vec<u8>)> {
    joined
        .members
        .iter()
        .map(|(id, meta)| {
            let meta = WorkerMetadata::decode(meta).expect("member metadata");
            let a = Assignment {
                leader: joined.leader_id.clone(),
                leader_url: meta.url,
                config_offset: 3,
                ..Assignment::default()
            };
            (id.clone(), a.encode(2))
        })
        .collect()
}

async fn join_and_sync(m: &mut GroupMember, url: &str) -> (Joined, Assignment) {
    let joined = m.join(&metadata(url)).await.expect("join");
    let out = if joined.is_leader() {
        assignments(&joined)
    } else {
        Vec::new()
    };
    let bytes = m.sync(&joined, out).await.expect("sync");
    (joined, Assignment::decode(&bytes).expect("assignment"))
}

#[test]
fn two_members_rebalance_on_join_leave_and_death() {
    kafka::runtime().block_on(async {
        let group = unique("wc-group");
        let session = Duration::from_secs(6);
        let mut a = member(&group, "a", session);
        let (joined, assignment) = join_and_sync(&mut a, "http://a/").await;
        assert!(joined.is_leader(), "a lone member leads");
        assert_eq!(joined.protocol, "sessioned");
        assert_eq!(assignment.leader_url, "http://a/");

        // b joins: a learns of the rebalance through its heartbeat and rejoins.
        let mut b = member(&group, "b", session);
        let b_task = tokio::spawn(async move {
            let r = join_and_sync(&mut b, "http://b/").await;
            (b, r)
        });
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match a.heartbeat().await {
                Ok(()) => tokio::time::sleep(Duration::from_millis(200)).await,
                Err(e) if e.needs_rejoin() => break,
                Err(e) => panic!("heartbeat: {e}"),
            }
            assert!(Instant::now() < deadline, "a never saw the rebalance");
        }
        let (a_joined, a_assignment) = join_and_sync(&mut a, "http://a/").await;
        let (mut b, (b_joined, b_assignment)) = b_task.await.expect("b");
        assert_eq!(a_joined.generation, b_joined.generation);
        assert!(a_joined.generation > joined.generation);
        assert_eq!(a_joined.leader_id, b_joined.leader_id);
        assert_eq!(a_assignment.leader_url, "http://a/");
        assert_eq!(b_assignment.leader_url, "http://b/");
        let leader_members = if a_joined.is_leader() {
            &a_joined.members
        } else {
            &b_joined.members
        };
        assert_eq!(leader_members.len(), 2);

        // b leaves cleanly: a sees the rebalance at once and leads alone.
        b.leave().await.expect("leave");
        let left = Instant::now();
        loop {
            match a.heartbeat().await {
                Ok(()) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(e) if e.needs_rejoin() => break,
                Err(e) => panic!("heartbeat: {e}"),
            }
            assert!(left.elapsed() < Duration::from_secs(5), "leave not noticed");
        }
        let (alone, _) = join_and_sync(&mut a, "http://a/").await;
        assert!(alone.is_leader());
        assert_eq!(alone.members.len(), 1);

        // c joins and then dies without a word: after its session timeout a is alone again.
        let mut c = member(&group, "c", session);
        let c_task = tokio::spawn(async move {
            let r = join_and_sync(&mut c, "http://c/").await;
            (c, r)
        });
        loop {
            match a.heartbeat().await {
                Ok(()) => tokio::time::sleep(Duration::from_millis(200)).await,
                Err(e) if e.needs_rejoin() => break,
                Err(e) => panic!("heartbeat: {e}"),
            }
        }
        let (with_c, _) = join_and_sync(&mut a, "http://a/").await;
        let (c, _) = c_task.await.expect("c");
        if with_c.is_leader() {
            assert_eq!(with_c.members.len(), 2);
        }
        drop(c);
        let died = Instant::now();
        loop {
            match a.heartbeat().await {
                Ok(()) => tokio::time::sleep(Duration::from_millis(200)).await,
                Err(e) if e.needs_rejoin() => break,
                Err(e) => panic!("heartbeat: {e}"),
            }
            assert!(
                died.elapsed() < session * 3,
                "the dead member was never dropped"
            );
        }
        let (after, _) = join_and_sync(&mut a, "http://a/").await;
        assert!(after.is_leader());
        assert_eq!(after.members.len(), 1);
        println!(
            "dead member dropped after {} ms (session timeout {} ms)",
            died.elapsed().as_millis(),
            session.as_millis()
        );
    });
}
