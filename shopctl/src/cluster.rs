//! What shopctl asks of a running NATS cluster about the event stream: which node leads it, and
//! whether every node holds a current copy. `shopctl chaos --cluster` kills the leader found by
//! the first, and by the second knows when it may break a node (never a second one down) and
//! that every node it killed rejoined and caught up.

use anyhow::{Context, Result};
use async_nats::jetstream::{self, stream::ClusterInfo};

/// The event stream's replication state as its leader reports it (`cluster` of its stream info).
pub async fn stream_cluster(js: &jetstream::Context) -> Result<ClusterInfo> {
    let stream = js.get_stream(common::bus::STREAM).await?;
    stream.cached_info().cluster.clone().context("the stream reports no cluster: not a clustered server")
}

/// Whether each of `nodes` holds a current copy: there is a leader, and every other node is a
/// follower neither offline nor behind. `Err` says what is missing.
pub fn all_current(info: &ClusterInfo, nodes: usize) -> Result<(), String> {
    let leader = info.leader.as_deref().ok_or("the stream has no leader")?;
    let lagging: Vec<String> = info
        .replicas
        .iter()
        .filter(|peer| peer.offline || !peer.current)
        .map(|peer| format!("{} {}", peer.name, if peer.offline { "offline" } else { "catching up" }))
        .collect();
    if !lagging.is_empty() {
        return Err(format!("{} (leader {leader})", lagging.join(", ")));
    }
    if info.replicas.len() + 1 < nodes {
        return Err(format!("only {} of {nodes} copies (leader {leader})", info.replicas.len() + 1));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `cluster` field of a stream info as nats-server 2.15 sends it.
    fn info(json: &str) -> ClusterInfo {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_leader_and_two_current_followers_are_three_current_copies() {
        let healthy = info(
            r#"{"name":"msa-shop","leader":"node-2","replicas":[
                {"name":"node-1","current":true,"active":1000000},
                {"name":"node-3","current":true,"active":2000000}]}"#,
        );
        assert_eq!(all_current(&healthy, 3), Ok(()));
    }

    #[test]
    fn an_offline_a_lagging_or_a_missing_copy_or_no_leader_is_not_caught_up() {
        let offline = info(
            r#"{"leader":"node-2","replicas":[
                {"name":"node-1","current":false,"offline":true,"active":9000000000},
                {"name":"node-3","current":true,"active":1000000}]}"#,
        );
        assert_eq!(all_current(&offline, 3), Err("node-1 offline (leader node-2)".to_owned()));
        let lagging = info(
            r#"{"leader":"node-2","replicas":[
                {"name":"node-1","current":false,"active":1000000,"lag":120},
                {"name":"node-3","current":true,"active":1000000}]}"#,
        );
        assert_eq!(all_current(&lagging, 3), Err("node-1 catching up (leader node-2)".to_owned()));
        let missing = info(r#"{"leader":"node-2","replicas":[{"name":"node-1","current":true,"active":1}]}"#);
        assert_eq!(all_current(&missing, 3), Err("only 2 of 3 copies (leader node-2)".to_owned()));
        assert!(all_current(&info(r#"{"replicas":[]}"#), 3).is_err());
    }
}
